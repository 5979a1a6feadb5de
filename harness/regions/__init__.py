"""PARTITION: the report labeler, organ segmentation and the allowed regions built from them."""
