#include "error.h"

const char *h2ws_strerror(int err) {
  switch (err) {
  case H2WS_OK:
    return "success";
  case H2WS_ERR_INVALID_ARGUMENT:
    return "invalid argument";
  case H2WS_ERR_INVALID_STATE:
    return "invalid state";
  case H2WS_ERR_TOO_BIG:
    return "limit exceeded";
  case H2WS_ERR_WOULDBLOCK:
    return "would block";
  case H2WS_ERR_NOMEM:
    return "out of memory";
  case H2WS_ERR_PROTOCOL:
    return "protocol error";
  case H2WS_ERR_CALLBACK:
    return "callback failed";
  case H2WS_ERR_INTERNAL:
    return "internal error";
  default:
    return "unknown error";
  }
}

int h2ws_close_code_is_valid(unsigned code) {
  if (code >= 1000 && code <= 1003)
    return 1;
  if (code >= 1007 && code <= 1014)
    return 1;
  if (code >= 3000 && code <= 4999)
    return 1;
  return 0;
}
