"""The Responses API: create (streamed, stored, chained, backgrounded), retrieve, delete, cancel, input items."""
