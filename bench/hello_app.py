"""The baseline for throughput figures: a bare Flask JSON "hello" endpoint."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return {"hello": "world"}
