from ragbridge.cli import app

app()
