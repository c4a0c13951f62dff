"""Replay of recorded bags without ROS: one bag in order through a detector (``one_bag``), and many bags on a Ray
cluster (``fleet``) with a ledger of what is complete."""
