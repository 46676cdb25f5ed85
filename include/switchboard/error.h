/** @file
 * switchboard error convention.
 *
 * Every function that can fail returns 0 (or a count) on success and a
 * negative number on failure: either a negative errno (-ECONNREFUSED, ...)
 * or one of the library's own codes below, all smaller than SB_ERR_BASE so
 * they can never collide with an errno. sb_strerror() names either kind.
 */
#ifndef SWITCHBOARD_ERROR_H
#define SWITCHBOARD_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/** Every library code is below this, clear of every errno. */
#define SB_ERR_BASE (-10000)

/** The library's own failure codes. */
enum sb_error {
    SB_ETOOBIG = SB_ERR_BASE - 1,     /**< message larger than the configured limit */
    SB_EMALFORMED = SB_ERR_BASE - 2,  /**< bytes that break the framing rules */
    SB_ETRUNCATED = SB_ERR_BASE - 3,  /**< peer closed in the middle of a message */
    SB_EBADSPEC = SB_ERR_BASE - 4,    /**< unparsable framing spec */
    SB_EBADADDR = SB_ERR_BASE - 5,    /**< unparsable address string */
    SB_ENOHOST = SB_ERR_BASE - 6,     /**< name resolution found no address */
    SB_EBADPORT = SB_ERR_BASE - 7,    /**< port missing, not a number or out of range */
    SB_EPATHLEN = SB_ERR_BASE - 8,    /**< unix socket path longer than sun_path */
    SB_EFDSETSIZE = SB_ERR_BASE - 9,  /**< fd >= FD_SETSIZE offered to the select backend */
    SB_EOVERFLOW = SB_ERR_BASE - 10,  /**< integer (varint, ascii length) overflows */
    SB_ECLOSED = SB_ERR_BASE - 11,    /**< peer closed the connection (orderly EOF) */
    SB_EBADTYPE = SB_ERR_BASE - 12,   /**< typed framing: type byte not in the table */
    SB_EOUTPUT = SB_ERR_BASE - 13,    /**< output queue exceeded its cap (peer not reading) */
    SB_EBACKEND = SB_ERR_BASE - 14,   /**< unknown or unavailable loop backend */
    SB_EHTTP = SB_ERR_BASE - 15,      /**< malformed HTTP message */
    SB_ENOTLS = SB_ERR_BASE - 16,     /**< TLS asked for, but this build has no TLS */
    SB_ETLS = SB_ERR_BASE - 17,       /**< TLS handshake or record failure */
    SB_ETLSVERIFY = SB_ERR_BASE - 18, /**< the peer's certificate did not verify */
    SB_ETLSHOST = SB_ERR_BASE - 19,   /**< the certificate does not name the host */
    SB_ETLSTRUNC = SB_ERR_BASE - 20,  /**< TLS stream ended without close_notify */
    SB_ETLSCONF = SB_ERR_BASE - 21,   /**< unusable certificate, key or CA file */
    SB_ERR_LAST = SB_ERR_BASE - 22    /**< one past the last code */
};

/** Text for a code returned by any switchboard function (negative errno,
 * SB_E* or http.h's SB_HTTP_*). Never NULL; the string is static. */
const char *sb_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif
