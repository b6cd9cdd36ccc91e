"""The data-access layer's shared parts: the one table's definition and key formats, the DynamoDB toolkit
(attribute values, key conditions, paging, error classes, the one retry loop), receipts that apply each write at
most once per request, and the stage's secrets (SSM). Each capability's own `store.py` builds on these."""
