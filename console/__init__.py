"""Engine-agnostic logic the tabs drive: the running engine, chat sessions, transcripts."""
