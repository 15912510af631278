/*
 * rosenpass of the rpbuild test stand-in (written for the tests; see CONTRACT.md).
 *
 * WHAT IT PROVES
 *   The plumbing of upstream rosenpass 0.2.1 (rosenpass/rosenpass at 62aa9b4) that rpbuild and
 *   its images rely on: the command lines of `gen-keys`, `keygen` and `exchange` (the argument
 *   state machine of config.rs parse_args, with its error cases), key file names and sizes, that
 *   `exchange` binds the rosenpass UDP port itself, that a peer with an endpoint initiates and
 *   retransmits until answered, that the WireGuard peer is configured only after the first
 *   successful exchange with `wg set DEV peer WGPK preshared-key /dev/stdin EXTRA...` (key as
 *   base64 on wg's stdin), that both sides then hold the same 32-byte key, that the key is
 *   renewed (responder after 120 s, initiator after 130 s) and replaced by a random one when it
 *   was not renewed within 180 s, and `--version`.
 *
 * WHAT IT DOES NOT PROVE
 *   Anything about post-quantum security. There is no McEliece, no Kyber, no AEAD: the
 *   handshake is four plain UDP messages (HELLO, RESP, CONF, ACK) and the key is SHA-256 over a
 *   domain string, both public keys' digests, both sides' fresh 32-byte nonces and the optional
 *   static PSK. Anyone who knows both public keys and sees the traffic can compute it. pqsk and
 *   pqpk have upstream's sizes (13608 / 524160 bytes) but are not McEliece keys. Messages,
 *   log lines and timings under load differ from upstream.
 *
 * Test knob (stand-in only): ROSENPASS_STANDIN_REKEY_SECONDS=S scales the session timers by
 * S/120 (responder S, initiator S*130/120, reject S*180/120, retransmission cap 10 s * S/120,
 * at least 0.5 s).
 *
 * SHA-256 below is written from FIPS 180-4 for this file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VERSION "0.2.1"
#define SK_LEN 13608
#define PK_LEN 524160
#define KEY_LEN 32

/* ---- SHA-256 (FIPS 180-4, section 6.2) ---------------------------------------------- */

typedef struct {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t block[64];
    size_t used;
} sha256_ctx;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_compress(sha256_ctx *c, const uint8_t *p) {
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 | (uint32_t)p[4 * t + 2] << 8 |
               (uint32_t)p[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3];
    uint32_t e = c->h[4], f = c->h[5], g = c->h[6], h = c->h[7];
    for (int t = 0; t < 64; t++) {
        uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + S1 + ch + K256[t] + w[t];
        uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t maj = (a & b) ^ (a & cc) ^ (b & cc);
        uint32_t t2 = S0 + maj;
        h = g; g = f; f = e; e = d + t1; d = cc; cc = b; b = a; a = t1 + t2;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d;
    c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
}

static void sha256_init(sha256_ctx *c) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->bytes = 0;
    c->used = 0;
}

static void sha256_update(sha256_ctx *c, const void *data, size_t len) {
    const uint8_t *p = data;
    c->bytes += len;
    while (len > 0) {
        size_t take = 64 - c->used;
        if (take > len) take = len;
        memcpy(c->block + c->used, p, take);
        c->used += take;
        p += take;
        len -= take;
        if (c->used == 64) {
            sha256_compress(c, c->block);
            c->used = 0;
        }
    }
}

static void sha256_final(sha256_ctx *c, uint8_t out[32]) {
    uint64_t bits = c->bytes * 8;
    uint8_t pad = 0x80, zero = 0, len[8];
    sha256_update(c, &pad, 1);
    while (c->used != 56) sha256_update(c, &zero, 1);
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(c, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

/* ---- small helpers ------------------------------------------------------------------ */

static int verbose = 0;

static void logmsg(const char *level, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "[%s rosenpass] ", level);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Errors end the program like upstream's main(): logged, exit 1. */
static void fail(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "[ERROR rosenpass] ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void random_bytes(void *buf, size_t len) {
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("getrandom failed: %s", strerror(errno));
        }
        p += n;
        len -= (size_t)n;
    }
}

static void base64(const uint8_t *in, size_t len, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = 0;
}

static int unbase64(const char *in, uint8_t *out, size_t want) {
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (; *in; in++) {
        int v;
        char ch = *in;
        if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
        else if (ch == '+') v = 62;
        else if (ch == '/') v = 63;
        else if (ch == '=' || ch == '\n' || ch == '\r' || ch == ' ') continue;
        else return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == want) return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return o == want ? 0 : -1;
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Reads exactly len bytes (like upstream's read_exact_to_end). */
static void load_exact(const char *what, const char *path, uint8_t *buf, size_t len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("could not open %s file \"%s\": %s", what, path, strerror(errno));
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail("%s file \"%s\": failed to fill whole buffer (%zu of %zu bytes)", what, path, got, len);
        got += (size_t)n;
    }
    uint8_t extra;
    if (read(fd, &extra, 1) > 0) fail("%s file \"%s\": File too long!", what, path);
    close(fd);
}

static void store(const char *path, const uint8_t *buf, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) fail("could not write \"%s\": %s", path, strerror(errno));
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("could not write \"%s\": %s", path, strerror(errno));
        done += (size_t)n;
    }
    if (close(fd) != 0) fail("could not write \"%s\": %s", path, strerror(errno));
}

/* pqpk = SHA-256 counter stream seeded by pqsk: upstream's size, not McEliece. */
static void derive_pk(const uint8_t *sk, uint8_t *pk) {
    uint8_t seed[32];
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, "rosenpass-standin pqpk v1", 25);
    sha256_update(&c, sk, SK_LEN);
    sha256_final(&c, seed);
    for (uint32_t i = 0; (size_t)i * 32 < PK_LEN; i++) {
        uint8_t ctr[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        uint8_t block[32];
        sha256_init(&c);
        sha256_update(&c, seed, 32);
        sha256_update(&c, ctr, 4);
        sha256_final(&c, block);
        size_t off = (size_t)i * 32, n = PK_LEN - off < 32 ? PK_LEN - off : 32;
        memcpy(pk + off, block, n);
    }
}

static void generate_and_save_keypair(const char *skf, const char *pkf) {
    uint8_t *sk = malloc(SK_LEN), *pk = malloc(PK_LEN);
    if (!sk || !pk) fail("out of memory");
    random_bytes(sk, SK_LEN);
    derive_pk(sk, pk);
    store(skf, sk, SK_LEN);
    store(pkf, pk, PK_LEN);
    free(sk);
    free(pk);
}

/* ---- commands: help, version, gen-keys, keygen --------------------------------------- */

static void help(FILE *out) {
    fprintf(out,
            "Build post-quantum-secure VPNs with WireGuard! (rpbuild test stand-in: no post-quantum cryptography)\n"
            "\n"
            "Usage: rosenpass <COMMAND>\n"
            "\n"
            "Commands:\n"
            "  exchange-config  Start Rosenpass in server mode and carry on with the key exchange\n"
            "  exchange         Start in daemon mode, performing key exchanges\n"
            "  gen-config       Generate a demo config file\n"
            "  gen-keys         Generate the keys mentioned in a configFile\n"
            "  keygen           Deprecated - use gen-keys instead\n"
            "  validate         Validate a configuration\n"
            "  man              Show the rosenpass manpage\n"
            "  help             Print this message or the help of the given subcommand(s)\n"
            "\n"
            "Options:\n"
            "  -h, --help     Print help\n"
            "  -V, --version  Print version\n");
}

static int cmd_gen_keys(int argc, char **argv) {
    const char *config = NULL, *pkf = NULL, *skf = NULL;
    int force = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        const char *val = NULL;
        if (!strcmp(a, "-f") || !strcmp(a, "--force")) { force = 1; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("Generate the keys mentioned in a configFile\n\n"
                   "Usage: rosenpass gen-keys [OPTIONS] [CONFIG_FILE]\n\n"
                   "Options:\n  -p, --public-key <PUBLIC_KEY>  where to write public-key to\n"
                   "  -s, --secret-key <SECRET_KEY>  where to write secret-key to\n"
                   "  -f, --force                    Forcefully overwrite public- & secret-key file\n");
            return 0;
        }
        if (!strncmp(a, "--public-key", 12) && (a[12] == 0 || a[12] == '=')) { slot = &pkf; val = a[12] ? a + 13 : NULL; }
        else if (!strncmp(a, "--secret-key", 12) && (a[12] == 0 || a[12] == '=')) { slot = &skf; val = a[12] ? a + 13 : NULL; }
        else if (!strncmp(a, "-p", 2)) { slot = &pkf; val = a[2] ? a + 2 : NULL; }
        else if (!strncmp(a, "-s", 2)) { slot = &skf; val = a[2] ? a + 2 : NULL; }
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "error: unexpected argument '%s' found\n\nUsage: rosenpass gen-keys [OPTIONS] [CONFIG_FILE]\n", a);
            return 2;
        } else if (!config) { config = a; continue; }
        else {
            fprintf(stderr, "error: unexpected argument '%s' found\n\nUsage: rosenpass gen-keys [OPTIONS] [CONFIG_FILE]\n", a);
            return 2;
        }
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "error: a value is required for '%s' but none was supplied\n", a);
                return 2;
            }
            val = argv[++i];
        }
        *slot = val;
    }
    if (config) fail("gen-keys with a config file is not implemented by the stand-in");
    if (!pkf || !skf) fail("either a config-file or both public-key and secret-key file are required");
    int pk_exists = !force && is_file(pkf), sk_exists = !force && is_file(skf);
    if (pk_exists || sk_exists) {
        fprintf(stderr, "[ERROR rosenpass] ");
        if (pk_exists) fprintf(stderr, "public-key file \"%s\" exist, refusing to overwrite it%s", pkf, sk_exists ? "\n" : "");
        if (sk_exists) fprintf(stderr, "secret-key file \"%s\" exist, refusing to overwrite it", skf);
        fputc('\n', stderr);
        return 1;
    }
    generate_and_save_keypair(skf, pkf);
    return 0;
}

static int cmd_keygen(int argc, char **argv) {
    const char *pkf = NULL, *skf = NULL;
    logmsg("WARN", "The 'keygen' command is deprecated. Please use the 'gen-keys' command instead.");
    for (int i = 0; i < argc; i += 2) {
        if (i + 1 < argc && (!strcmp(argv[i], "private-key") || !strcmp(argv[i], "secret-key"))) skf = argv[i + 1];
        else if (i + 1 < argc && !strcmp(argv[i], "public-key")) pkf = argv[i + 1];
        else fail("Unknown option `%s`", argv[i]);
    }
    if (!skf) fail("private-key is required");
    if (!pkf) fail("public-key is required");
    generate_and_save_keypair(skf, pkf);
    return 0;
}

/* ---- exchange: configuration (config.rs parse_args) ---------------------------------- */

#define MAX_PEERS 16
#define MAX_LISTEN 8
#define MAX_SOCKS 8
#define ROLE_INITIATOR 1
#define ROLE_RESPONDER 2

struct peer {
    const char *pk_path, *endpoint, *psk_path, *wg_dev, *wg_peer;
    char **extra;
    int nextra;
    uint8_t fp[32], psk[32];
    int has_ep;
    struct sockaddr_storage ep;
    socklen_t eplen;
    int has_cur, cur_sock;
    struct sockaddr_storage cur;
    socklen_t curlen;
    /* session */
    int has_session, role;
    double session_at;
    /* our own handshake as initiator: stage 1 = HELLO sent, 2 = CONF sent */
    int hs_stage;
    uint8_t hs_sid[8], hs_ni[32], hs_nr[32], hs_key[32];
    double hs_next, hs_delay, hs_created;
    /* a handshake we answer as responder */
    int rs_active;
    double rs_at;
    uint8_t rs_sid[8], rs_ni[32], rs_nr[32], rs_key[32];
    int rs_done;
    uint8_t done_sid[8], done_key[32];
};

static struct {
    const char *pk_path, *sk_path;
    const char *listen[MAX_LISTEN];
    int nlisten;
    struct peer peers[MAX_PEERS];
    int npeers;
    uint8_t fp[32];
    int socks[MAX_SOCKS], sock_v6only[MAX_SOCKS], sock_family[MAX_SOCKS];
    int nsocks;
    double t_responder, t_initiator, t_reject, rtx_cap;
} S;

enum state { OWN, OWN_PK, OWN_SK, OWN_LISTEN, PEER, PEER_PSK, PEER_PK, PEER_EP, PEER_OUT, PEER_WGDEV, PEER_WGPEER, PEER_WGEXTRA };

/* Upstream's state machine, including its quirks: `preshared-key` records "endpoint set", so a
 * peer cannot have both (whichever comes second fails). */
static void parse_exchange(int argc, char **argv) {
    enum state st = OWN;
    int set_own_pk = 0, set_own_sk = 0;
    int set_pk = 0, set_ep = 0, set_out = 0, set_wgdev = 0, set_wgpeer = 0;
    struct peer *p = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        switch (st) {
        case OWN:
            if (!strcmp(a, "public-key")) st = OWN_PK;
            else if (!strcmp(a, "secret-key")) st = OWN_SK;
            else if (!strcmp(a, "private-key")) {
                logmsg("WARN", "the private-key argument is deprecated, please use secret-key instead");
                st = OWN_SK;
            } else if (!strcmp(a, "listen")) st = OWN_LISTEN;
            else if (!strcmp(a, "verbose")) verbose = 1;
            else if (!strcmp(a, "peer")) {
                if (!set_own_pk) fail("public-key file must be set");
                if (!set_own_sk) fail("secret-key file must be set");
                goto new_peer;
            } else fail("unrecognised argument %s", a);
            break;
        case OWN_PK:
            if (set_own_pk++) fail("public-key was already set");
            S.pk_path = a; st = OWN;
            break;
        case OWN_SK:
            if (set_own_sk++) fail("secret-key was already set");
            S.sk_path = a; st = OWN;
            break;
        case OWN_LISTEN:
            if (S.nlisten == MAX_LISTEN) fail("too many listen addresses for the stand-in");
            S.listen[S.nlisten++] = a; st = OWN;
            break;
        case PEER:
        case PEER_WGEXTRA:
            if (!strcmp(a, "peer")) goto new_peer;
            if (st == PEER_WGEXTRA) {
                p->extra[p->nextra++] = (char *)a;
                break;
            }
            if (!strcmp(a, "public-key")) st = PEER_PK;
            else if (!strcmp(a, "endpoint")) st = PEER_EP;
            else if (!strcmp(a, "preshared-key")) st = PEER_PSK;
            else if (!strcmp(a, "outfile")) st = PEER_OUT;
            else if (!strcmp(a, "wireguard")) st = PEER_WGDEV;
            else fail("unrecongnised argument %s", a); /* sic, upstream's spelling */
            break;
        case PEER_PK:
            if (set_pk++) fail("public-key was already set");
            p->pk_path = a; st = PEER;
            break;
        case PEER_EP:
            if (set_ep++) fail("endpoint was already set");
            p->endpoint = a; st = PEER;
            break;
        case PEER_PSK:
            if (set_ep++) fail("peer psk was already set");
            p->psk_path = a; st = PEER;
            break;
        case PEER_OUT:
            if (set_out++) fail("peer outfile was already set");
            fail("outfile is not implemented by the stand-in");
            break;
        case PEER_WGDEV:
            if (set_wgdev++) fail("peer wireguard-dev was already set");
            p->wg_dev = a; st = PEER_WGPEER;
            break;
        case PEER_WGPEER:
            if (set_wgpeer++) fail("peer wireguard-peer was already set");
            p->wg_peer = a; st = PEER_WGEXTRA;
            break;
        }
        continue;
    new_peer:
        if (S.npeers == MAX_PEERS) fail("too many peers for the stand-in");
        p = &S.peers[S.npeers++];
        memset(p, 0, sizeof *p);
        p->extra = calloc((size_t)argc + 1, sizeof(char *));
        if (!p->extra) fail("out of memory");
        set_pk = set_ep = set_out = set_wgdev = set_wgpeer = 0;
        st = PEER;
    }
}

/* ADDR:PORT or [ADDR]:PORT (also a host name) -> sockaddr; 0 on success. */
static int resolve(const char *spec, int passive, struct sockaddr_storage *out, socklen_t *outlen) {
    char host[256], *port;
    if (strlen(spec) >= sizeof host) return -1;
    strcpy(host, spec);
    port = strrchr(host, ':');
    if (!port) return -1;
    *port++ = 0;
    char *h = host;
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h[hl - 1] = 0;
        h++;
    }
    char *end;
    unsigned long pn = strtoul(port, &end, 10);
    if (!*port || *end || pn > 65535) return -1;
    /* numeric addresses without getaddrinfo: a static binary has no NSS modules */
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, h, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)pn);
        *outlen = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET6, h, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)pn);
        *outlen = sizeof *v6;
        return 0;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    if (getaddrinfo(h, port, &hints, &res) != 0 || !res) return -1;
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *outlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int open_socket(int family, const struct sockaddr *addr, socklen_t len) {
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    if (bind(fd, addr, len) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int v6only = 0;
    socklen_t sl = sizeof v6only;
    if (family == AF_INET6 && getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &sl) != 0) v6only = 1;
    S.socks[S.nsocks] = fd;
    S.sock_family[S.nsocks] = family;
    S.sock_v6only[S.nsocks] = v6only;
    S.nsocks++;
    return fd;
}

static void open_sockets(void) {
    for (int i = 0; i < S.nlisten; i++) {
        struct sockaddr_storage a;
        socklen_t l;
        if (resolve(S.listen[i], 1, &a, &l) != 0) fail("invalid socket address %s", S.listen[i]);
        if (open_socket(a.ss_family, (struct sockaddr *)&a, l) < 0)
            fail("could not bind to %s: %s", S.listen[i], strerror(errno));
    }
    if (S.nsocks == 0) {
        struct sockaddr_in6 any6;
        memset(&any6, 0, sizeof any6);
        any6.sin6_family = AF_INET6;
        int fd = open_socket(AF_INET6, (struct sockaddr *)&any6, sizeof any6);
        if (fd < 0) logmsg("WARN", "Could not bind to IPv6 socket: %s", strerror(errno));
        if (fd < 0 || S.sock_v6only[S.nsocks - 1]) {
            struct sockaddr_in any4;
            memset(&any4, 0, sizeof any4);
            any4.sin_family = AF_INET;
            if (open_socket(AF_INET, (struct sockaddr *)&any4, sizeof any4) < 0)
                logmsg("WARN", "Could not bind to IPv4 socket: %s", strerror(errno));
        }
    }
    if (S.nsocks == 0) fail("No sockets to listen on!");
}

/* Sends to addr through a socket of its family (or a dual-stack IPv6 one). */
static void send_to(int sock, const struct sockaddr_storage *addr, socklen_t len, const void *buf, size_t n) {
    struct sockaddr_in6 mapped;
    const struct sockaddr *dst = (const struct sockaddr *)addr;
    if (sock < 0) {
        for (int i = 0; i < S.nsocks && sock < 0; i++)
            if (S.sock_family[i] == addr->ss_family) sock = S.socks[i];
        for (int i = 0; i < S.nsocks && sock < 0; i++) {
            if (addr->ss_family == AF_INET && S.sock_family[i] == AF_INET6 && !S.sock_v6only[i]) {
                const struct sockaddr_in *v4 = (const struct sockaddr_in *)addr;
                memset(&mapped, 0, sizeof mapped);
                mapped.sin6_family = AF_INET6;
                mapped.sin6_port = v4->sin_port;
                mapped.sin6_addr.s6_addr[10] = 0xff;
                mapped.sin6_addr.s6_addr[11] = 0xff;
                memcpy(&mapped.sin6_addr.s6_addr[12], &v4->sin_addr, 4);
                dst = (const struct sockaddr *)&mapped;
                len = sizeof mapped;
                sock = S.socks[i];
            }
        }
    }
    if (sock < 0) {
        logmsg("WARN", "no socket can reach the peer's address family");
        return;
    }
    if (sendto(sock, buf, n, 0, dst, len) < 0 && verbose) logmsg("WARN", "send failed: %s", strerror(errno));
}

/* ---- exchange: the stand-in handshake ------------------------------------------------ */

enum { MSG_HELLO = 1, MSG_RESP = 2, MSG_CONF = 3, MSG_ACK = 4 };

struct msg {
    uint8_t magic[4]; /* "RPs1" */
    uint8_t type, pad[3];
    uint8_t from[32], to[32], sid[8], ni[32], nr[32], mac[32];
};

static void derive_key(const struct peer *p, const uint8_t *fp_i, const uint8_t *fp_r, const uint8_t *ni,
                       const uint8_t *nr, uint8_t key[32]) {
    static const uint8_t zero[32];
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, "rosenpass-standin osk v1", 24);
    sha256_update(&c, fp_i, 32);
    sha256_update(&c, fp_r, 32);
    sha256_update(&c, ni, 32);
    sha256_update(&c, nr, 32);
    sha256_update(&c, p->psk_path ? p->psk : zero, 32);
    sha256_final(&c, key);
}

static void mac(const char *label, const uint8_t key[32], uint8_t out[32]) {
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, "rosenpass-standin mac ", 22);
    sha256_update(&c, label, strlen(label));
    sha256_update(&c, key, 32);
    sha256_final(&c, out);
}

static void fill(struct msg *m, int type, const struct peer *p, const uint8_t *sid, const uint8_t *ni,
                 const uint8_t *nr, const char *label, const uint8_t *key) {
    memset(m, 0, sizeof *m);
    memcpy(m->magic, "RPs1", 4);
    m->type = (uint8_t)type;
    memcpy(m->from, S.fp, 32);
    memcpy(m->to, p->fp, 32);
    memcpy(m->sid, sid, 8);
    if (ni) memcpy(m->ni, ni, 32);
    if (nr) memcpy(m->nr, nr, 32);
    if (label) mac(label, key, m->mac);
}

/* Upstream's output_key: `wg set DEV peer WGPK preshared-key /dev/stdin EXTRA...`, key on stdin. */
static void output_key(struct peer *p, const uint8_t key[32], const char *why) {
    char b64[64], peerid[64];
    base64(p->fp, 32, peerid);
    if (verbose) logmsg("INFO", "%s %s", why, peerid);
    if (!p->wg_dev) return;
    base64(key, 32, b64);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        logmsg("ERROR", "could not pass psk to wg: pipe: %s", strerror(errno));
        return;
    }
    char **argv = calloc((size_t)p->nextra + 9, sizeof(char *));
    int n = 0;
    argv[n++] = "wg";
    argv[n++] = "set";
    argv[n++] = (char *)p->wg_dev;
    argv[n++] = "peer";
    argv[n++] = (char *)(p->wg_peer ? p->wg_peer : "");
    argv[n++] = "preshared-key";
    argv[n++] = "/dev/stdin";
    for (int i = 0; i < p->nextra; i++) argv[n++] = p->extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        dup2(fds[0], 0);
        execvp("wg", argv);
        fprintf(stderr, "[ERROR rosenpass] could not run wg: %s\n", strerror(errno));
        _exit(127);
    }
    close(fds[0]);
    free(argv);
    if (pid < 0) {
        close(fds[1]);
        logmsg("ERROR", "could not pass psk to wg: fork: %s", strerror(errno));
        return;
    }
    if (write(fds[1], b64, strlen(b64)) != (ssize_t)strlen(b64))
        logmsg("ERROR", "could not pass psk to wg: write: %s", strerror(errno));
    close(fds[1]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) logmsg("ERROR", "could not pass psk to wg (status %d)", status);
}

static void begin_session(struct peer *p, int role, const uint8_t key[32]) {
    p->has_session = 1;
    p->role = role;
    p->session_at = now();
    output_key(p, key, "Exchanged key with peer");
}

static double unit_random(void) {
    uint8_t r;
    random_bytes(&r, 1);
    return (double)r / 255.0;
}

static void schedule_retransmit(struct peer *p, int first) {
    /* upstream's register_retransmission: 0.5 s * 2^n, at most 10 s, times 0.5 * (1 + random) */
    p->hs_delay = first ? 0.5 : fmin(p->hs_delay * 2, S.rtx_cap);
    if (p->hs_delay > S.rtx_cap) p->hs_delay = S.rtx_cap;
    p->hs_next = now() + p->hs_delay * 0.5 * (1 + unit_random());
}

static int peer_address(struct peer *p, struct sockaddr_storage **a, socklen_t **l, int *sock) {
    if (p->has_cur) { *a = &p->cur; *l = &p->curlen; *sock = p->cur_sock; return 1; }
    if (p->has_ep) { *a = &p->ep; *l = &p->eplen; *sock = -1; return 1; }
    return 0;
}

static void transmit(struct peer *p) {
    struct sockaddr_storage *a;
    socklen_t *l;
    int sock;
    struct msg m;
    if (!peer_address(p, &a, &l, &sock)) return;
    if (p->hs_stage == 1) fill(&m, MSG_HELLO, p, p->hs_sid, p->hs_ni, NULL, NULL, NULL);
    else fill(&m, MSG_CONF, p, p->hs_sid, p->hs_ni, p->hs_nr, "conf", p->hs_key);
    send_to(sock, a, *l, &m, sizeof m);
}

static void start_handshake(struct peer *p) {
    struct sockaddr_storage *a;
    socklen_t *l;
    int sock;
    if (!peer_address(p, &a, &l, &sock)) return;
    random_bytes(p->hs_sid, 8);
    random_bytes(p->hs_ni, 32);
    p->hs_stage = 1;
    p->hs_created = now();
    transmit(p);
    schedule_retransmit(p, 1);
}

static struct peer *peer_by_fp(const uint8_t *fp) {
    for (int i = 0; i < S.npeers; i++)
        if (!memcmp(S.peers[i].fp, fp, 32)) return &S.peers[i];
    return NULL;
}

static void handle(int sock, const struct msg *m, const struct sockaddr_storage *src, socklen_t srclen) {
    if (memcmp(m->magic, "RPs1", 4) || memcmp(m->to, S.fp, 32)) return;
    struct peer *p = peer_by_fp(m->from);
    if (!p) {
        if (verbose) logmsg("INFO", "message from an unknown peer ignored");
        return;
    }
    uint8_t key[32], check[32];
    struct msg out;
    switch (m->type) {
    case MSG_HELLO:
        if (p->hs_stage == 1) {
            if (memcmp(S.fp, p->fp, 32) > 0) return; /* both initiate: the lower key answers */
            p->hs_stage = 0;
        }
        if (!p->rs_active || memcmp(p->rs_sid, m->sid, 8)) {
            p->rs_active = 1;
            p->rs_at = now();
            memcpy(p->rs_sid, m->sid, 8);
            memcpy(p->rs_ni, m->ni, 32);
            random_bytes(p->rs_nr, 32);
            derive_key(p, p->fp, S.fp, p->rs_ni, p->rs_nr, p->rs_key);
        }
        fill(&out, MSG_RESP, p, p->rs_sid, p->rs_ni, p->rs_nr, "resp", p->rs_key);
        send_to(sock, src, srclen, &out, sizeof out);
        break;
    case MSG_RESP:
        if (!p->hs_stage || memcmp(m->sid, p->hs_sid, 8) || memcmp(m->ni, p->hs_ni, 32)) return;
        derive_key(p, S.fp, p->fp, p->hs_ni, m->nr, key);
        mac("resp", key, check);
        if (memcmp(check, m->mac, 32)) {
            if (verbose) logmsg("INFO", "response with a wrong confirmation ignored (static PSK differs?)");
            return;
        }
        p->has_cur = 1;
        memcpy(&p->cur, src, srclen);
        p->curlen = srclen;
        p->cur_sock = sock;
        if (p->hs_stage == 1) {
            memcpy(p->hs_nr, m->nr, 32);
            memcpy(p->hs_key, key, 32);
            p->hs_stage = 2;
            transmit(p);
            schedule_retransmit(p, 1);
            begin_session(p, ROLE_INITIATOR, key);
        } else {
            transmit(p);
        }
        break;
    case MSG_CONF:
        if (p->rs_done && !memcmp(m->sid, p->done_sid, 8)) { /* retransmitted CONF: ACK again */
            fill(&out, MSG_ACK, p, p->done_sid, NULL, NULL, "ack", p->done_key);
            send_to(sock, src, srclen, &out, sizeof out);
            return;
        }
        if (!p->rs_active || memcmp(m->sid, p->rs_sid, 8) || memcmp(m->nr, p->rs_nr, 32)) return;
        mac("conf", p->rs_key, check);
        if (memcmp(check, m->mac, 32)) return;
        p->rs_active = 0;
        p->rs_done = 1;
        memcpy(p->done_sid, p->rs_sid, 8);
        memcpy(p->done_key, p->rs_key, 32);
        p->has_cur = 1;
        memcpy(&p->cur, src, srclen);
        p->curlen = srclen;
        p->cur_sock = sock;
        fill(&out, MSG_ACK, p, p->done_sid, NULL, NULL, "ack", p->done_key);
        send_to(sock, src, srclen, &out, sizeof out);
        begin_session(p, ROLE_RESPONDER, p->done_key);
        break;
    case MSG_ACK:
        if (p->hs_stage != 2 || memcmp(m->sid, p->hs_sid, 8)) return;
        mac("ack", p->hs_key, check);
        if (!memcmp(check, m->mac, 32)) p->hs_stage = 0;
        break;
    }
}

/* Timers of one peer; returns seconds until its next event. */
static double poll_peer(struct peer *p) {
    double t = now(), next = 3600;
    if (p->has_session) {
        double stale = p->session_at + S.t_reject;
        if (t >= stale) {
            uint8_t junk[32];
            random_bytes(junk, 32);
            p->has_session = 0;
            output_key(p, junk, "Erasing outdated key from peer");
        } else {
            next = fmin(next, stale - t);
        }
    }
    if (p->hs_stage == 0) {
        double due = p->has_session ? p->session_at + (p->role == ROLE_INITIATOR ? S.t_initiator : S.t_responder) : t;
        /* while answering the peer's handshake, do not start one of our own */
        if (p->rs_active && p->rs_at + 2 * S.rtx_cap > due) due = p->rs_at + 2 * S.rtx_cap;
        if (t >= due && (p->has_cur || p->has_ep)) start_handshake(p);
        else if (t < due) next = fmin(next, due - t);
    } else if (t >= p->hs_created + S.t_reject) {
        p->hs_stage = 0; /* a handshake lives as long as a key (upstream: IniHsPtr::die_at) */
        next = 0;
    } else if (t >= p->hs_next) {
        transmit(p);
        schedule_retransmit(p, 0);
    }
    if (p->hs_stage) next = fmin(next, p->hs_next - now());
    return next;
}

static double timing_scale(void) {
    const char *v = getenv("ROSENPASS_STANDIN_REKEY_SECONDS");
    if (!v || !*v) return 1.0;
    char *end;
    double s = strtod(v, &end);
    if (*end || !(s > 0) || !isfinite(s))
        fail("ROSENPASS_STANDIN_REKEY_SECONDS must be a positive number of seconds, not '%s'", v);
    return s / 120.0;
}

static int cmd_exchange(int argc, char **argv) {
    parse_exchange(argc, argv);
    /* config.validate() */
    if (!S.pk_path || !is_file(S.pk_path)) fail("public-key file \"%s\" does not exist", S.pk_path ? S.pk_path : "");
    if (!S.sk_path || !is_file(S.sk_path)) fail("secret-key file \"%s\" does not exist", S.sk_path ? S.sk_path : "");
    for (int i = 0; i < S.npeers; i++) {
        struct peer *p = &S.peers[i];
        if (!p->pk_path || !is_file(p->pk_path))
            fail("peer %d public-key file \"%s\" does not exist", i, p->pk_path ? p->pk_path : "");
        if (p->endpoint && resolve(p->endpoint, 0, &p->ep, &p->eplen) != 0)
            fail("peer %d endpoint %s can not be parsed to a socket address", i, p->endpoint);
        p->has_ep = p->endpoint != NULL;
    }
    double scale = timing_scale();
    S.t_responder = 120 * scale;
    S.t_initiator = 130 * scale;
    S.t_reject = 180 * scale;
    S.rtx_cap = fmax(0.5, 10 * scale);

    /* load keys (exact sizes, like upstream) */
    uint8_t *buf = malloc(PK_LEN);
    if (!buf) fail("out of memory");
    load_exact("secret-key", S.sk_path, buf, SK_LEN);
    load_exact("public-key", S.pk_path, buf, PK_LEN);
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, buf, PK_LEN);
    sha256_final(&c, S.fp);
    for (int i = 0; i < S.npeers; i++) {
        struct peer *p = &S.peers[i];
        load_exact("peer public-key", p->pk_path, buf, PK_LEN);
        sha256_init(&c);
        sha256_update(&c, buf, PK_LEN);
        sha256_final(&c, p->fp);
        if (p->psk_path) {
            char text[128];
            int fd = open(p->psk_path, O_RDONLY | O_CLOEXEC);
            ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
            if (fd >= 0) close(fd);
            if (n < 0) fail("could not read preshared-key file \"%s\"", p->psk_path);
            text[n] = 0;
            if (unbase64(text, p->psk, 32) != 0) fail("preshared-key file \"%s\" is not a base64 32-byte key", p->psk_path);
        }
    }
    free(buf);
    open_sockets();
    signal(SIGPIPE, SIG_IGN);

    struct pollfd pfd[MAX_SOCKS];
    for (;;) {
        double wait = 3600;
        for (int i = 0; i < S.npeers; i++) wait = fmin(wait, poll_peer(&S.peers[i]));
        for (int i = 0; i < S.nsocks; i++) {
            pfd[i].fd = S.socks[i];
            pfd[i].events = POLLIN;
        }
        int ms = wait <= 0 ? 0 : (int)(wait * 1000) + 1;
        int r = poll(pfd, (nfds_t)S.nsocks, ms);
        if (r < 0 && errno != EINTR) fail("poll: %s", strerror(errno));
        for (int i = 0; r > 0 && i < S.nsocks; i++) {
            if (!(pfd[i].revents & POLLIN)) continue;
            for (;;) {
                struct msg m;
                struct sockaddr_storage src;
                socklen_t sl = sizeof src;
                ssize_t n = recvfrom(S.socks[i], &m, sizeof m, 0, (struct sockaddr *)&src, &sl);
                if (n < 0) break;
                if (n == (ssize_t)sizeof m) handle(S.socks[i], &m, &src, sl);
            }
        }
    }
    return 1; /* not reached */
}

int main(int argc, char **argv) {
    setvbuf(stderr, NULL, _IOLBF, 0);
    if (argc < 2) {
        help(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("rosenpass %s\n", VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        help(stdout);
        return 0;
    }
    if (!strcmp(cmd, "gen-keys")) return cmd_gen_keys(argc - 2, argv + 2);
    if (!strcmp(cmd, "keygen")) return cmd_keygen(argc - 2, argv + 2);
    if (!strcmp(cmd, "exchange")) {
        if (argc < 3) {
            fprintf(stderr, "error: the following required arguments were not provided:\n  <OWN_CONFIG>\n\n"
                            "Usage: rosenpass exchange <OWN_CONFIG> [PEERS]...\n");
            return 2;
        }
        return cmd_exchange(argc - 2, argv + 2);
    }
    if (!strcmp(cmd, "exchange-config") || !strcmp(cmd, "gen-config") || !strcmp(cmd, "validate") ||
        !strcmp(cmd, "man"))
        fail("'%s' is not implemented by the stand-in", cmd);
    fprintf(stderr, "error: unrecognized subcommand '%s'\n\nUsage: rosenpass <COMMAND>\n\nFor more information, try '--help'.\n", cmd);
    return 2;
}
