"""Host-side tools that turn a YOLOv5 checkpoint into a KV260 DPU model (not installed on the board)."""
