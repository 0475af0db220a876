"""The Batch API (OpenAI's /v1/batches and Anthropic's /v1/messages/batches): validation, execution, results."""
