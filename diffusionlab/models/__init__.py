"""The networks of the course: the UNet (lessons 1-3, 7, 9) and its attention (lessons 7-9)."""
