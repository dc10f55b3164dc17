"""AWQ W4A16 quantization from the console: checks, offline calibration, and the job."""
