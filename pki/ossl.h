// pki/ossl.h — the only place that knows how each OpenSSL type is freed.
//
// A raw pointer parameter is borrowed; ownership moves only as UniquePtr<T>&&. After a failed
// OpenSSL call, OsslError() drains the thread's error queue into a Status so that it is never
// left behind for the next caller.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>

#include "base/status.h"

namespace istioca::pki {

template <class T>
struct Free;
#define ISTIOCA_OSSL_FREE(T, fn)      \
  template <>                         \
  struct Free<T> {                    \
    static void Call(T* p) { fn(p); } \
  }
ISTIOCA_OSSL_FREE(X509, X509_free);
ISTIOCA_OSSL_FREE(X509_REQ, X509_REQ_free);
ISTIOCA_OSSL_FREE(X509_NAME, X509_NAME_free);
ISTIOCA_OSSL_FREE(X509_EXTENSION, X509_EXTENSION_free);
ISTIOCA_OSSL_FREE(X509_STORE, X509_STORE_free);
ISTIOCA_OSSL_FREE(X509_STORE_CTX, X509_STORE_CTX_free);
ISTIOCA_OSSL_FREE(EVP_PKEY, EVP_PKEY_free);
ISTIOCA_OSSL_FREE(ASN1_OBJECT, ASN1_OBJECT_free);
ISTIOCA_OSSL_FREE(EVP_PKEY_CTX, EVP_PKEY_CTX_free);
ISTIOCA_OSSL_FREE(EVP_MD_CTX, EVP_MD_CTX_free);
ISTIOCA_OSSL_FREE(BIO, BIO_free_all);
ISTIOCA_OSSL_FREE(BIGNUM, BN_free);
ISTIOCA_OSSL_FREE(ASN1_STRING, ASN1_STRING_free);  // also ASN1_INTEGER, ASN1_OCTET_STRING
ISTIOCA_OSSL_FREE(GENERAL_NAME, GENERAL_NAME_free);
ISTIOCA_OSSL_FREE(GENERAL_NAMES, GENERAL_NAMES_free);
ISTIOCA_OSSL_FREE(BASIC_CONSTRAINTS, BASIC_CONSTRAINTS_free);
ISTIOCA_OSSL_FREE(EXTENDED_KEY_USAGE, EXTENDED_KEY_USAGE_free);
ISTIOCA_OSSL_FREE(AUTHORITY_KEYID, AUTHORITY_KEYID_free);
ISTIOCA_OSSL_FREE(SSL_CTX, SSL_CTX_free);
ISTIOCA_OSSL_FREE(SSL, SSL_free);
ISTIOCA_OSSL_FREE(PKCS8_PRIV_KEY_INFO, PKCS8_PRIV_KEY_INFO_free);
ISTIOCA_OSSL_FREE(EC_GROUP, EC_GROUP_free);
#undef ISTIOCA_OSSL_FREE

template <class T>
struct Deleter {
  void operator()(T* p) const {
    if (p != nullptr) Free<T>::Call(p);
  }
};

template <class T>
using UniquePtr = std::unique_ptr<T, Deleter<T>>;

// Stack of X509 that owns its elements.
struct X509StackDeleter {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using X509Stack = std::unique_ptr<STACK_OF(X509), X509StackDeleter>;

// Returns a Status with `message` for the caller and the drained OpenSSL error queue as detail.
Status OsslError(Code code, const std::string& message);
// Drops whatever is on the error queue (after an expected failure, e.g. probing a format).
void ClearOsslErrors();

// Copies a memory BIO's contents into a string.
std::string BioToString(BIO* bio);

}  // namespace istioca::pki
