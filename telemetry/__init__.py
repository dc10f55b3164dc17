"""GPU and process memory telemetry: one NVML sampler the whole console shares."""
