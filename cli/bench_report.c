/* bench_report: the report of `switchboard bench`, as text or as one JSON
 * object (bench.h). Rates are over the measured window; "messages" are the
 * replies (HTTP: responses) received inside it. */
#include <stdio.h>

#include "bench.h"

static double us(uint64_t ns) { return (double)ns / 1e3; }

static double rate_of(const struct result *r)
{
    return r->window_s > 0 ? (double)r->k.messages / r->window_s : 0;
}

/* Echo: payload both ways. HTTP: every response byte, heads included, as
 * wrk's Transfer/sec. */
static double mb_per_s(const struct bench_opts *o, const struct result *r)
{
    if (o->http)
        return r->window_s > 0 ? (double)r->k.bytes_win / r->window_s / 1e6 : 0;
    return rate_of(r) * 2.0 * (double)o->size / 1e6;
}

static double cpu_per_msg(const struct bench_opts *o, const struct result *r)
{
    uint64_t basis = o->connect_only || o->count ? r->k.received : r->k.messages;

    return basis ? r->cpu_s * 1e6 / (double)basis : 0.0;
}

void bench_describe(const struct bench_opts *o, FILE *f)
{
    fprintf(f, "switchboard bench %s: %ld conns x pipeline %ld, ", o->addr, o->conns, o->pipeline);
    if (o->http)
        fputs("GET", f);
    else
        fprintf(f, "%zu B payload, %s", o->size, o->frame);
    fprintf(f, ", %ld thread%s", o->threads, o->threads == 1 ? "" : "s");
    if (o->rate > 0)
        fprintf(f, ", rate %g/s", o->rate);
    if (o->reconnect)
        fprintf(f, ", a new connection%s per %s", o->tls ? (o->tls_resume ? " (TLS resumed)" :
                                                                " (full TLS handshake)") : "",
                o->http ? "request" : "message");
    if (o->connect_only)
        fprintf(f, ", connect only, hold %g s", o->hold);
    else if (o->count)
        fprintf(f, ", %ld %s", o->count, o->http ? "requests" : "messages");
    else
        fprintf(f, ", %g s after %g s warmup", o->duration, o->warmup);
    if (o->count && o->duration_given)
        fprintf(f, " within %g s", o->duration);
}

static void print_statuses(const struct counters *k)
{
    const char *sep = "";

    if (k->e_status == 0)
        return;
    printf("  statuses    ");
    for (int s = 0; s < HTTP_STATUS_MAX; s++) {
        if (k->status[s] && (s < 200 || s > 299)) {
            printf("%s%d: %llu", sep, s, (unsigned long long)k->status[s]);
            sep = ", ";
        }
    }
    putchar('\n');
}

void bench_print_text(const struct bench_opts *o, const struct result *r)
{
    const struct counters *k = &r->k;
    const char *unit = o->http ? "requests" : "messages";

    bench_describe(o, stdout);
    putchar('\n');
    if (o->connect_only) {
        printf("  connected   %llu of %ld, held %g s, %llu replies checked\n",
               (unsigned long long)k->connected, o->conns, o->hold,
               (unsigned long long)k->received);
    } else {
        if (o->count)
            printf("  run         %.2f s, %llu of %ld %s answered\n", r->window_s,
                   (unsigned long long)k->received, o->count, unit);
        else
            printf("  window      %.2f s after %.2f s warmup\n", r->window_s, o->warmup);
        printf("  %-11s %llu (%.0f %s/s", unit, (unsigned long long)k->messages, rate_of(r),
               o->http ? "req" : "msgs");
        if (o->rate > 0)
            printf(", asked %g/s", o->rate);
        printf(")\n");
        if (o->reconnect) {
            printf("  connections %.0f/s (one per %s)", rate_of(r), o->http ? "request" : "message");
            if (o->tls)
                printf(", %llu TLS handshakes, %llu resumed", (unsigned long long)k->handshakes,
                       (unsigned long long)k->resumed);
            putchar('\n');
        }
        printf("  throughput  %.2f MB/s (%s)\n", mb_per_s(o, r),
               o->http ? "responses, heads included" : "payload, both ways");
    }
    printf("  latency us  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (mean %.1f)%s\n",
           us(hist_quantile(&r->h, 0.5)), us(hist_quantile(&r->h, 0.9)),
           us(hist_quantile(&r->h, 0.99)), us(hist_quantile(&r->h, 0.999)), us(r->h.max),
           r->h.count ? us(r->h.sum / r->h.count) : 0.0,
           o->rate > 0 ? ", from when each was due" : "");
    if (o->http)
        printf("  errors      %llu (connect %llu, tls %llu, status %llu, length %llu, http %llu,"
               " closed %llu, io %llu, unanswered %llu)\n",
               (unsigned long long)errors_of(k), (unsigned long long)k->e_connect,
               (unsigned long long)k->e_tls,
               (unsigned long long)k->e_status, (unsigned long long)k->e_length,
               (unsigned long long)k->e_decode, (unsigned long long)k->e_closed,
               (unsigned long long)k->e_io, (unsigned long long)k->e_unanswered);
    else
        printf("  errors      %llu (connect %llu, tls %llu, mismatch %llu, closed %llu, io %llu,"
               " decode %llu, unanswered %llu)\n",
               (unsigned long long)errors_of(k), (unsigned long long)k->e_connect,
               (unsigned long long)k->e_tls,
               (unsigned long long)k->e_mismatch, (unsigned long long)k->e_closed,
               (unsigned long long)k->e_io, (unsigned long long)k->e_decode,
               (unsigned long long)k->e_unanswered);
    print_statuses(k);
    if (k->reconnects)
        printf("  reconnects  %llu (the server closed after a response)\n",
               (unsigned long long)k->reconnects);
    printf("  client CPU  %.2f us/%s (%.3f s, %s)\n", cpu_per_msg(o, r), o->http ? "req" : "msg",
           r->cpu_s, r->client);
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void json_statuses(const struct counters *k)
{
    const char *sep = "";

    fputs("\"statuses\":{", stdout);
    for (int s = 0; s < HTTP_STATUS_MAX; s++) {
        if (k->status[s]) {
            printf("%s\"%d\":%llu", sep, s, (unsigned long long)k->status[s]);
            sep = ",";
        }
    }
    fputs("},", stdout);
}

void bench_print_json(const struct bench_opts *o, const struct result *r)
{
    const struct counters *k = &r->k;

    fputs("{\"addr\":", stdout);
    json_str(o->addr);
    printf(",\"mode\":\"%s\",\"frame\":", o->http ? "http" : "echo");
    json_str(o->http ? "http" : o->frame);
    printf(",\"conns\":%ld,\"pipeline\":%ld,\"size\":%zu,"
           "\"threads\":%ld,\"duration_s\":%g,\"warmup_s\":%g,\"connect_only\":%s,\"hold_s\":%g,"
           "\"count\":%ld,\"rate_asked\":%g,\"window_s\":%.4f,",
           o->conns, o->pipeline, o->http ? 0 : o->size, o->threads,
           o->connect_only || (o->count && !o->duration_given) ? 0 : o->duration,
           o->connect_only ? 0 : o->warmup, o->connect_only ? "true" : "false",
           o->connect_only ? o->hold : 0, o->count, o->rate, r->window_s);
    printf("\"connected\":%llu,\"reconnects\":%llu,\"messages\":%llu,\"sent_total\":%llu,"
           "\"received_total\":%llu,\"bytes_received\":%llu,"
           "\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"mb_basis\":\"%s, 1 MB = 1e6 B\",",
           (unsigned long long)k->connected, (unsigned long long)k->reconnects,
           (unsigned long long)k->messages, (unsigned long long)k->sent,
           (unsigned long long)k->received, (unsigned long long)k->bytes_in, rate_of(r),
           mb_per_s(o, r), o->http ? "responses received, heads included" : "payload both ways");
    printf("\"latency_us\":{\"min\":%.1f,\"mean\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,"
           "\"p99.9\":%.1f,\"max\":%.1f},\"latency_from\":\"%s\",",
           r->h.count ? us(r->h.min) : 0.0, r->h.count ? us(r->h.sum / r->h.count) : 0.0,
           us(hist_quantile(&r->h, 0.5)), us(hist_quantile(&r->h, 0.9)),
           us(hist_quantile(&r->h, 0.99)), us(hist_quantile(&r->h, 0.999)), us(r->h.max),
           o->rate > 0 ? "due" : "sent");
    printf("\"reconnect\":%s,\"tls_resume\":%s,\"tls_handshakes\":%llu,\"tls_resumed\":%llu,",
           o->reconnect ? "true" : "false", o->tls_resume ? "true" : "false",
           (unsigned long long)k->handshakes, (unsigned long long)k->resumed);
    printf("\"errors\":{\"connect\":%llu,\"tls\":%llu,\"mismatch\":%llu,\"closed\":%llu,\"io\":%llu,"
           "\"decode\":%llu,\"unanswered\":%llu,\"status\":%llu,\"length\":%llu},"
           "\"errors_total\":%llu,",
           (unsigned long long)k->e_connect, (unsigned long long)k->e_tls,
           (unsigned long long)k->e_mismatch, (unsigned long long)k->e_closed, (unsigned long long)k->e_io,
           (unsigned long long)k->e_decode, (unsigned long long)k->e_unanswered,
           (unsigned long long)k->e_status, (unsigned long long)k->e_length,
           (unsigned long long)errors_of(k));
    json_statuses(k);
    printf("\"client_backend\":");
    json_str(r->client);
    printf(",\"client_cpu_s\":%.4f,\"client_cpu_us_per_msg\":%.3f,\"client_ring_buffers\":%llu}\n",
           r->cpu_s, cpu_per_msg(o, r), (unsigned long long)k->ring_bufs);
}
