"""The agent loop runs and responses share: model turn → tool calls → built-in tools → next turn."""
