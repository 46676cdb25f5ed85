/** @file
 * frame: every message framing of HOWTO section 3, as incremental decoders
 * and encoders.
 *
 *   raw         no framing: each read is one message
 *   line        ends at '\n'; a '\r' before it is dropped too (so the
 *               encoder ends a payload that ends in '\r' with "\r\n")
 *   delim:STR   ends at STR (C escapes: \r \n \t \\ \0 \xHH), STR 1..16 bytes
 *   fixed:N     exactly N bytes
 *   ascii:N     N decimal digits of payload length, then the payload
 *   len16 len32 len64   big-endian binary length, then the payload
 *   varint      LEB128 length, then the payload
 *   typed:T=N,...  one type byte T, then the payload whose length the table
 *               gives for T. T is one character or 0xHH; N is decimal.
 *   eof         the message is everything up to the peer's shutdown
 *
 * The decoder is a pure function over bytes, in the style of picohttpparser:
 * sb_frame_decode() looks at the bytes received so far and either cuts one
 * whole message off the front, says "incomplete" (0), or reports an error.
 * It never allocates and never reads past n. The caller keeps the bytes it
 * has not consumed (the start of the next message) and offers them again
 * with more appended: that is the HOWTO's "put that aside and hold onto it".
 *
 * sb_decoder adds the buffer for callers that receive arbitrary chunks:
 * feed it any split of the stream and take out whole messages.
 */
#ifndef SWITCHBOARD_FRAME_H
#define SWITCHBOARD_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The framings, one per SPEC name above. */
typedef enum sb_frame_kind {
    SB_FRAME_RAW,    /**< raw */
    SB_FRAME_LINE,   /**< line */
    SB_FRAME_DELIM,  /**< delim:STR */
    SB_FRAME_FIXED,  /**< fixed:N */
    SB_FRAME_ASCII,  /**< ascii:N */
    SB_FRAME_LEN16,  /**< len16 */
    SB_FRAME_LEN32,  /**< len32 */
    SB_FRAME_LEN64,  /**< len64 */
    SB_FRAME_VARINT, /**< varint */
    SB_FRAME_TYPED,  /**< typed:T=N,... */
    SB_FRAME_EOF,    /**< eof */
    SB_FRAME_CUSTOM /**< caller-supplied cutter, see sb_frame_cut_fn */
} sb_frame_kind;

#define SB_DELIM_MAX 16 /**< longest delim:STR, in bytes */
#define SB_TYPED_NONE UINT32_MAX /**< typed table entry for an unknown type */

typedef struct sb_msg sb_msg;

/** A cutter for SB_FRAME_CUSTOM (used by protocols such as HTTP whose
 * framing is their own). Same contract as sb_frame_decode, plus state:
 * spec->cut_state_size bytes that belong to one stream of messages (each
 * connection, sb_stream and sb_decoder keeps its own block; the caller of
 * the decoder owns it). They are zero-filled before the first call and
 * whenever the stream loses an unfinished message, and otherwise kept
 * as the cutter left them, so a cutter can resume where its last call
 * stopped instead of reading the unfinished message again from its start,
 * and can leave what it learned about a message there for whoever handles
 * it. state is NULL when the caller keeps none (sb_frame_decode, or a
 * cut_state_size of 0): the cutter must then work from the bytes alone.
 * What the cutter learns about the message it cuts (a parsed HTTP head,
 * say) goes into msg->info: when spec->cut_info_size > 0 and the caller
 * keeps state, msg->info arrives pointing at that many bytes the caller
 * keeps valid until the message has been handled (sb_frame_state.info),
 * else it arrives NULL; the cutter fills them, or sets msg->info to NULL.
 * They are per message, not per stream: one thread's streams may share
 * one block, so a stream that waits costs only its cut_state_size.
 * ud is the spec's cut_ud, shared by every stream. */
typedef ssize_t (*sb_frame_cut_fn)(void *ud, void *state, const uint8_t *p, size_t n, int eof,
                                   sb_msg *msg);

/** A parsed SPEC. Plain value; copy it freely. */
typedef struct sb_frame_spec {
    sb_frame_kind kind;           /**< which framing */
    size_t n;                     /**< fixed:N length; ascii:N digit count */
    uint8_t delim[SB_DELIM_MAX];  /**< delim:STR bytes (line: "\n") */
    size_t delim_len;             /**< bytes in delim */
    uint32_t typed[256];          /**< typed: payload length per type byte */
    sb_frame_cut_fn cut;          /**< custom: the cutter */
    void *cut_ud;                 /**< custom: its argument */
    size_t cut_state_size;        /**< custom: bytes of per-stream state it keeps (0: none) */
    size_t cut_info_size;         /**< custom: bytes it fills about each message (0: none) */
} sb_frame_spec;

/** One decoded message. data points into the bytes given to the decoder and
 * is valid only as long as they are. */
struct sb_msg {
    const uint8_t *data; /**< payload (no length prefix, type byte or delimiter) */
    size_t len;          /**< payload length */
    int type;            /**< typed: the type byte; otherwise -1 */
    void *info;          /**< custom: what the cutter says about the message (see
                            sb_frame_cut_fn: valid while it is handled), or NULL;
                            otherwise NULL */
};

/** Parse a SPEC string. Returns 0 or SB_EBADSPEC. */
int sb_frame_parse(const char *spec, sb_frame_spec *out);

/** Cut one message from the front of p[0..n).
 *   > 0  bytes consumed (header + payload + delimiter); *msg is set
 *   0    incomplete: keep the bytes, call again with more
 *   < 0  SB_ETOOBIG (declared or accumulated length > max_msg, reported as
 *        soon as it is known, before anything is allocated), SB_EMALFORMED
 *        (non-digit in ascii:N), SB_EBADTYPE (typed: unknown type),
 *        SB_EOVERFLOW (varint over 64 bits), SB_ETRUNCATED (eof set and
 *        bytes of an unfinished message remain)
 * eof != 0 says the peer has shut down its sending side: p[0..n) is all that
 * will ever come. With eof and n == 0 the result is 0 (clean end). For `eof`
 * framing the whole input is the message once eof is set; for `raw` any
 * non-empty input is one message (cut into max_msg pieces when longer).
 * max_msg bounds the payload length (0 = no bound). */
ssize_t sb_frame_decode(const sb_frame_spec *spec, size_t max_msg,
                        const uint8_t *p, size_t n, int eof, sb_msg *msg);

/** What a caller keeps for one stream of messages so that decoding resumes
 * where it stopped instead of starting over on every read: for the
 * delimiter framings (line, delim), how far the unfinished message has
 * been searched; for a custom cutter, its state block and the block it
 * fills about each message. A zero-filled sb_frame_state is a fresh one,
 * except that it holds neither block for a cutter that asks for them (its
 * cutter then gets NULL): sb_frame_state_init gives it both. */
typedef struct sb_frame_state {
    size_t scan;      /**< line, delim: leading bytes already searched */
    void *cut;        /**< custom: the cutter's state, cut_size bytes, owned */
    size_t cut_size;  /**< bytes in cut */
    void *info;       /**< custom: cut_info_size bytes for the message being cut */
    int info_owned;   /**< info is st's own (freed with it), not the caller's */
} sb_frame_state;

/** Zero st and give it the cutter's state and info blocks that spec asks
 * for, both owned by st. 0 or -ENOMEM. A caller that handles many streams
 * on one thread may instead point info at one block of its own before
 * each decode (a zero-filled st plus the state block is then enough). */
int sb_frame_state_init(sb_frame_state *st, const sb_frame_spec *spec);
/** The unfinished message is gone (its bytes were taken some other way):
 * start the next one afresh. */
void sb_frame_state_reset(sb_frame_state *st);
/** Release the blocks st owns; st is zero-filled after. */
void sb_frame_state_free(sb_frame_state *st);

/** sb_frame_decode for one stream of messages: st (may be NULL) is where
 * the last call for the same stream stopped. After "incomplete" it holds
 * what was already searched; after a message or an error the delimiter
 * framings start afresh, and a custom cutter keeps its state as it left
 * it. So a long line or head arriving in many small reads is searched
 * once, not once per read. */
ssize_t sb_frame_decode_from(const sb_frame_spec *spec, size_t max_msg, const uint8_t *p,
                             size_t n, int eof, sb_msg *msg, sb_frame_state *st);

/** @{ */
/** Encoding. A framed message is header + payload + trailer; the header and
 * trailer are at most SB_FRAME_HDR_MAX bytes each, so an encoder can queue
 * the payload without copying it (writev).
 * sb_frame_header writes the header for a payload of len bytes (and type,
 * used by typed framing) and returns its length, or SB_ETOOBIG if len does
 * not fit the length field (or differs from fixed:N / the typed table),
 * SB_EBADTYPE for a type not in the table.
 * sb_frame_trailer writes the trailer that follows the payload p[0..len)
 * (the delimiter for line/delim, nothing otherwise; "\r\n" for a line
 * payload ending in '\r', whose own '\r' the decoder would otherwise drop)
 * and returns its length. p is only read, during the call.
 * For line/delim the payload must not contain the delimiter, nor end in
 * bytes that form it with the trailer: sb_frame_check_payload returns
 * SB_EMALFORMED if it does, else 0.
 * Every message the decoder yields passes these checks, and its encoding
 * decodes to the same message: decode -> encode -> decode is the identity
 * for every framing (raw and eof one message per stream). */
#define SB_FRAME_HDR_MAX 24
int sb_frame_header(const sb_frame_spec *spec, int type, size_t len, uint8_t *hdr);
int sb_frame_trailer(const sb_frame_spec *spec, const void *p, size_t len, uint8_t *trl);
int sb_frame_check_payload(const sb_frame_spec *spec, const uint8_t *p, size_t len);
/** @} */
/** Header + payload + trailer appended to out. Returns 0 or an error above
 * (out unchanged on error). */
int sb_frame_encode(const sb_frame_spec *spec, int type, const void *p, size_t len, sb_buf *out);

/** A buffering decoder for arbitrary chunks. The decoder copies fed bytes
 * into its own buffer; the unfinished message in it is bounded by max_msg
 * plus the largest header and delimiter (whole messages fed but not yet
 * taken are not bounded: take them with sb_decoder_next). Messages
 * returned by sb_decoder_next point into that buffer and are valid until
 * the next call to sb_decoder_feed, sb_decoder_next or sb_decoder_free. */
typedef struct sb_decoder {
    sb_frame_spec spec; /**< the framing */
    size_t max_msg;     /**< bound on a message's payload */
    sb_buf in;          /**< bytes fed and not yet taken */
    size_t pending; /**< bytes of the last returned message still to consume */
    sb_frame_state fs; /**< where decoding of the unfinished message stopped */
    int eof;        /**< sb_decoder_eof was called */
    int error;      /**< sticky: once a decode fails, it keeps failing */
} sb_decoder;

/** With a custom cutter that keeps state, the block is allocated here; if
 * that fails, every later call reports -ENOMEM. */
void sb_decoder_init(sb_decoder *d, const sb_frame_spec *spec, size_t max_msg);
/** Release the decoder's buffer. */
void sb_decoder_free(sb_decoder *d);
/** Append bytes. Returns 0, -ENOMEM, or SB_ETOOBIG if buffering them would
 * exceed the bound. A message whose header already declares too much is
 * reported by sb_decoder_next instead (SB_ETOOBIG there). */
int sb_decoder_feed(sb_decoder *d, const void *p, size_t n);
/** Mark end of stream (peer shut down). */
void sb_decoder_eof(sb_decoder *d);
/** Take the next whole message: 1 with *msg set, 0 when more bytes are
 * needed (or clean end after eof), or a negative error (sticky). */
int sb_decoder_next(sb_decoder *d, sb_msg *msg);

#ifdef __cplusplus
}
#endif

#endif
