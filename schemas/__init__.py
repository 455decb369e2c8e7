"""External contracts: the usage event and API request/response models."""
