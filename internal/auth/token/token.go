// Package token decides when Isotope's API needs a bearer token and keeps
// the generated one in the data dir.
//
// The rule: an API that any other machine can reach (it listens on
// anything but a loopback address) always requires a token. An explicit
// token (the --token flag or ISOTOPE_TOKEN) is used as given; otherwise
// one is generated on first start into <data-dir>/token (mode 0600) and
// reused on later starts. On loopback no token is required unless one is
// given.
package token

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// FileName is the token file inside the data dir.
const FileName = "token"

// IsLoopback reports whether a listen address ("host:port", as given or as
// a listener reports it) is reachable from this machine only. An empty
// host, 0.0.0.0 and :: listen on every interface and are not; "localhost"
// and loopback IPs are; any other host name is treated as reachable.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	if i := strings.IndexByte(host, '%'); i >= 0 { // fe80::1%eth0
		host = host[:i]
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Generate returns a new random token: 32 bytes from crypto/rand in hex.
func Generate() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// LoadOrCreate returns the token in dataDir/token, creating the file with
// a new token (mode 0600, written to a temporary file and renamed, so a
// crash never leaves half a token) when it does not exist. created tells
// whether it was made now. A token file others can read, or an empty
// one, is refused with an error naming the file and the fix.
func LoadOrCreate(dataDir string) (tok string, created bool, err error) {
	path := filepath.Join(dataDir, FileName)
	tok, err = Load(path)
	if err == nil {
		return tok, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	if tok, err = Generate(); err != nil {
		return "", false, fmt.Errorf("generate the API token: %w", err)
	}
	tmp, err := os.CreateTemp(dataDir, ".token-*")
	if err != nil {
		return "", false, fmt.Errorf("write the API token: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err = tmp.Chmod(0o600); err == nil {
		if _, err = tmp.WriteString(tok + "\n"); err == nil {
			err = tmp.Sync()
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return "", false, fmt.Errorf("write the API token to %s: %w", path, err)
	}
	return tok, true, nil
}

// Load reads a token file, refusing one that group or others can access
// or that holds no token.
func Load(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.IsDir() {
		return "", fmt.Errorf("API token file %s is a directory", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("API token file %s is accessible to other users (mode %04o): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("API token file %s does not hold one token: delete it to generate a new one", path)
	}
	return tok, nil
}

// Notice is what `isotope server` prints once, on stderr, when it has
// generated a token.
func Notice(path, tok string) string {
	return fmt.Sprintf(`The API listens on a non-loopback address, so it requires a bearer token.
A new token was generated and saved in %s (shown only this once):

    export ISOTOPE_TOKEN=%s

Set it wherever you run the isotope CLI; other clients send
"Authorization: Bearer <token>". The router (function traffic) does not use it.
`, path, tok)
}
