"""The Textual console; its own asyncio process, speaking only HTTP to the local API."""
