"""The built-in deterministic offline model (see provider.py); helpers reused elsewhere:
`schema.value_for_schema` (a value valid against a JSON schema) and `text.reply_text` (a reply that
refers to the conversation)."""
from app.inference.providers.offline.provider import OfflineProvider
from app.inference.providers.offline.schema import value_for_schema
from app.inference.providers.offline.text import reply_text

__all__ = ["OfflineProvider", "reply_text", "value_for_schema"]
