"""Demo and test shop building: Magento schemas and generated shop data."""
