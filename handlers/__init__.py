"""Lambda handlers shipped in the release image (one image, many functions).

Each function's CMD is `handlers.<module>.lambda_handler`. Handlers import only their
runtime dependencies (handlers/requirements.txt), never the `release` package.
"""
