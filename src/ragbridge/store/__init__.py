"""Storage: the Store protocol, the embedded SQLite store and the PostgreSQL store."""
