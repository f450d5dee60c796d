"""The ways an answer ends other than complete, as the errors its message and its followers
get. A leaf module: the generation, the registry's shutdown drain, the sweeper and resume all
end answers, and none of them imports another for these."""

from messaging.llm.base import ProviderError

DISCONNECTED_ERROR = ProviderError(
    499,
    "api_error",
    "The client disconnected and the generation was stopped; the answer is incomplete.",
)
SHUTDOWN_ERROR = ProviderError(
    503,
    "api_error",
    "The server shut down before the answer was finished; the partial answer was kept.",
)
NOT_STORED_MESSAGE = (
    "The answer is complete but could not be stored yet: the database is unreachable. "
    "It will be stored when the database is back."
)
# Stored on a message whose process died mid-answer (the sweeper finishes it).
SWEPT_ERROR = {
    "type": "api_error",
    "message": "The server generating this answer stopped; the partial answer was kept.",
}
# Sent to a follower whose Redis event log failed mid-stream.
LOG_LOST_ERROR = {
    "type": "api_error",
    "message": "The answer's event log became unavailable (Redis failed). The answer is "
    "stored: resume again to replay it, or list the conversation's messages.",
}
