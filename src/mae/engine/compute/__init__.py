"""Where and how the step computes: processes (DDP, FSDP), precision, compilation."""
