/*
 * fcgi/errors.h: the one table from internal error code to HTTP status and
 * the public "code" string of the JSON error body. Handlers return one of
 * these; only the dispatcher turns it into a status line and a body.
 */
#ifndef DJAMMS_ERRORS_H
#define DJAMMS_ERRORS_H

#define APP_ERRORS(X)							\
	X(E_OK,			200, "ok")				\
	X(E_BAD_REQUEST,	400, "bad_request")			\
	X(E_UNAUTHORIZED,	401, "unauthorized")			\
	X(E_FORBIDDEN,		403, "forbidden")			\
	X(E_NOT_FOUND,		404, "not_found")			\
	X(E_NO_AUDIO,		404, "no_audio")			\
	X(E_METHOD,		405, "method_not_allowed")		\
	X(E_CONFLICT,		409, "conflict")			\
	X(E_GONE,		410, "gone")				\
	X(E_TOO_LARGE,		413, "payload_too_large")		\
	X(E_QUOTA,		413, "quota_exceeded")			\
	X(E_UNSUPPORTED,	415, "unsupported_media_type")		\
	X(E_INVALID,		422, "validation_failed")		\
	X(E_TRANSCODE,		422, "transcode_failed")		\
	X(E_RATE_LIMITED,	429, "rate_limited")			\
	X(E_INTERNAL,		500, "internal")			\
	X(E_UNAVAILABLE,	503, "unavailable")

enum app_err {
#define X(name, status, code)	name,
	APP_ERRORS(X)
#undef X
	E__COUNT
};

int		 app_err_status(enum app_err);
const char	*app_err_code(enum app_err);
const char	*app_err_default_message(enum app_err);

#endif
