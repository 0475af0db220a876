"""The Realtime API: sessions over a WebSocket, client secrets."""
