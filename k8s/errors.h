// k8s/errors.h — Kubernetes API failures as Status values.
//
// The API server answers errors with a Status object {"reason": ..., "code": N}. We map it onto
// base Code (so callers that only care about the class can switch on code()) and keep the
// Kubernetes reason and HTTP code in the Status detail, which the predicates below read. The
// message is the server's own message, which names objects but never carries credentials.
//
//   NotFound → kNotFound            AlreadyExists → kAlreadyExists   Conflict → kAborted
//   Expired/Gone (410) → kFailedPrecondition                         Forbidden → kPermissionDenied
//   Unauthorized → kUnauthenticated  Invalid/BadRequest → kInvalidArgument
//   TooManyRequests → kResourceExhausted                             5xx, transport → kUnavailable
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace istioca::k8s {

// Builds the Status for an HTTP answer with a non-2xx code from its body (a Status object, or
// anything else when a proxy answered).
Status StatusFromHttp(int http_code, std::string_view body);
// A request that never got an answer (connect, TLS, read timeout).
Status TransportError(std::string_view what);

// The Kubernetes reason ("Conflict", "Expired", ...) of a Status made above; "" otherwise.
std::string ReasonOf(const Status& s);
// The HTTP code of a Status made above; 0 for transport errors and other statuses.
int HttpCodeOf(const Status& s);

inline bool IsNotFound(const Status& s) { return s.code() == Code::kNotFound; }
inline bool IsAlreadyExists(const Status& s) { return s.code() == Code::kAlreadyExists; }
inline bool IsConflict(const Status& s) { return s.code() == Code::kAborted; }
// 403 on a create into a namespace being deleted (sample 088): it will never succeed there.
bool IsNamespaceTerminating(const Status& s);
// 410: the resourceVersion or continue token is older than what the server keeps.
bool IsGone(const Status& s);
// Worth retrying the same request after a pause: 429, 5xx, or no answer.
bool IsTransient(const Status& s);

}  // namespace istioca::k8s
