"""The Anthropic Messages API (``/v1/messages``) and OpenAI's Chat Completions
(``/v1/chat/completions``) over chatapi's own send service, so the official SDKs work with an
API key and every call is still stored, counted, budgeted and owned.

Each route translates once, at its edge: the request into the send service's inputs
(``base.CompatCall``), the stored answer or its event stream into the other API's objects,
and errors into that API's error shape and status codes."""
