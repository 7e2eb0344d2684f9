/*
 * error.h - error codes and RFC 6455 close codes shared by the h2ws core.
 *
 * Every function of the core that can fail returns a negative h2ws_error.
 * Codes at or below H2WS_ERR_FATAL mean the object that returned them can
 * no longer be used (other than being freed).
 */
#ifndef H2WS_ERROR_H
#define H2WS_ERROR_H

typedef enum {
  H2WS_OK = 0,
  /* Recoverable: the call was refused, nothing changed. */
  H2WS_ERR_INVALID_ARGUMENT = -1, /* a parameter is out of range */
  H2WS_ERR_INVALID_STATE = -2,    /* not allowed in the current state */
  H2WS_ERR_TOO_BIG = -3,          /* a configured limit would be exceeded */
  H2WS_ERR_WOULDBLOCK = -4,       /* nothing can be done now */
  /* Fatal band: the object is unusable afterwards. */
  H2WS_ERR_FATAL = -900,
  H2WS_ERR_NOMEM = -901,    /* the allocator returned NULL */
  H2WS_ERR_PROTOCOL = -902, /* the peer broke the protocol */
  H2WS_ERR_CALLBACK = -903, /* a caller-supplied callback failed */
  H2WS_ERR_INTERNAL = -904  /* a library we build on failed */
} h2ws_error;

/* RFC 6455 section 7.4.1 close codes the core emits or interprets. */
enum {
  H2WS_CLOSE_NORMAL = 1000,
  H2WS_CLOSE_GOING_AWAY = 1001,
  H2WS_CLOSE_PROTOCOL_ERROR = 1002,
  H2WS_CLOSE_UNSUPPORTED_DATA = 1003,
  H2WS_CLOSE_NO_STATUS = 1005, /* never on the wire: "close frame had no code" */
  H2WS_CLOSE_ABNORMAL = 1006,  /* never on the wire: "no close frame at all" */
  H2WS_CLOSE_INVALID_PAYLOAD = 1007,
  H2WS_CLOSE_POLICY_VIOLATION = 1008,
  H2WS_CLOSE_MESSAGE_TOO_BIG = 1009,
  H2WS_CLOSE_MANDATORY_EXTENSION = 1010,
  H2WS_CLOSE_INTERNAL_ERROR = 1011
};

/* Returns a static, human-readable name for an h2ws_error. Never NULL. */
const char *h2ws_strerror(int err);

/*
 * Returns 1 if `code` may appear in a close frame on the wire
 * (RFC 6455 section 7.4 and the IANA registry: 1000-1003, 1007-1014,
 * 3000-4999), 0 otherwise.
 */
int h2ws_close_code_is_valid(unsigned code);

#endif
