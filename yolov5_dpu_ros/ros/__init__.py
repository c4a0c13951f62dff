"""The ROS 2 node (rclpy, Humble): parameters, messages, the lifecycle node. Imports rclpy only below this file."""
