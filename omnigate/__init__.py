"""omnigate: an SMS central on asyncio."""

__version__ = "0.1.0"
