"""What a run keeps around its steps: plan, lock, stops, checkpoints, metrics and progress, the resume check."""
