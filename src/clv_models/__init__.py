"""clv_models: customer lifetime value, churn and segments from order history."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clv_models")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__"]
