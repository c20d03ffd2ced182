"""HTTP layer: routers, OpenAI schemas, errors, auth and limits. Nothing below imports it."""
