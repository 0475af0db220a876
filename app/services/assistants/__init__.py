"""The Assistants API (assistants, threads, messages, runs, run steps), kept alive after OpenAI retired it.

Objects are stored whole, as their wire shape, in the `data` column of their tables (storage/models.py);
the other columns repeat what queries filter on. Runs are executed by jobs (`executor.py`).
"""
