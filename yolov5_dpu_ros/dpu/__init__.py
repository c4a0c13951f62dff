"""The DPU's hardware truth without the hardware: reading xmodels, the pynq-dpu verdict, the board's rules."""
