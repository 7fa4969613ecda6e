"""The data-access layer: the only code that talks to DynamoDB.

`models` declares the tables (pynamodb); the other modules expose operations that
return domain values and raise the domain exceptions of `dripline.errors`.
"""
