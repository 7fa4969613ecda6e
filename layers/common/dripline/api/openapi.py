"""Print the OpenAPI document: `python -m dripline.api.openapi > docs/openapi.json`."""
import sys

from dripline.api.app import openapi_json

if __name__ == "__main__":
    sys.stdout.write(openapi_json())
