// A WAGI function in C: the request arrives in CGI environment variables
// (the body, if any, on stdin) and the response goes to stdout as a CGI
// response: header lines, an empty line, the body. Anything written to
// stderr goes to the function's log.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// hex is the value of a hexadecimal digit, or -1.
static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// param writes the first value of key in the query string q to out (at
// most n bytes with the terminating NUL), decoding %XX and '+', and
// returns its length; 0 when q has no such key.
static size_t param(const char *q, const char *key, char *out, size_t n) {
    size_t klen = strlen(key);
    while (q && *q) {
        const char *end = strchr(q, '&');
        if (!end) end = q + strlen(q);
        if ((size_t)(end - q) > klen && strncmp(q, key, klen) == 0 && q[klen] == '=') {
            size_t len = 0;
            for (const char *p = q + klen + 1; p < end && len + 1 < n; p++) {
                if (*p == '+') {
                    out[len++] = ' ';
                } else if (*p == '%' && p + 2 < end && hex(p[1]) >= 0 && hex(p[2]) >= 0) {
                    out[len++] = (char)(hex(p[1]) * 16 + hex(p[2]));
                    p += 2;
                } else {
                    out[len++] = *p;
                }
            }
            out[len] = '\0';
            return len;
        }
        q = *end ? end + 1 : end;
    }
    out[0] = '\0';
    return 0;
}

int main(void) {
    const char *method = getenv("REQUEST_METHOD");
    const char *path = getenv("PATH_INFO");
    char name[256];

    if (param(getenv("QUERY_STRING"), "name", name, sizeof name) == 0)
        strcpy(name, "world");
    fprintf(stderr, "greeting %s\n", name);
    printf("Content-Type: text/plain; charset=utf-8\n\n");
    printf("Hello, %s! (from C on WebAssembly, %s %s)\n", name,
           method ? method : "GET", path && *path ? path : "/");
    return 0;
}
