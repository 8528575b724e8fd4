// Package hmac authenticates calls between Isotope's roles (storagesvc,
// fetcher, builder, executor, router internals) the way Fission 1.23+
// does, byte for byte, so an Isotope role and a Fission role configured
// with the same master secret accept each other's requests.
//
// A signed request carries two headers:
//
//	X-Fission-Auth-Timestamp: <unix seconds>
//	X-Fission-Auth-Signature: hex(HMAC-SHA256(key, canonical))
//
// where canonical is
//
//	METHOD "\n" REQUEST-URI "\n" hex(SHA-256(body)) "\n" floor(ts/60)*60
//
// REQUEST-URI is the path plus the raw query (url.URL.RequestURI), so a
// signature for ?id=A cannot be replayed against ?id=B. The key is not
// the master secret itself but one derived per service channel:
// HKDF-SHA256(master, salt=none, info="fission-internal-v1:<service>"),
// 32 bytes, so a key leaked from one channel forges nothing on another.
// The verifier accepts a timestamp within ±60 s of its clock, and during a
// rotation a signature made with the old master too.
//
// What it does not do: it does not stop a replay of the same request
// within the skew window (no nonce store), and it does not encrypt; run
// it inside a network you trust for confidentiality or behind TLS.
package hmac

import (
	"crypto/hkdf"
	stdhmac "crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strconv"
	"time"
)

// Header names, Fission's.
const (
	HeaderTimestamp = "X-Fission-Auth-Timestamp"
	HeaderSignature = "X-Fission-Auth-Signature"
)

// KeyVersion prefixes the HKDF info string; changing it changes every key.
const KeyVersion = "fission-internal-v1"

// Defaults of the verifier and signer.
const (
	// DefaultSkew is how far a request's timestamp may be from the
	// verifier's clock.
	DefaultSkew = 60 * time.Second
	// DefaultMaxBody caps a body the verifier or signer hashes: 256 MiB,
	// Fission's storagesvc cap. Larger bodies get 413.
	DefaultMaxBody int64 = 256 << 20
	// DefaultMemBody is how much of a body is held in memory while it is
	// hashed; the rest spills to a temporary file, so memory stays bounded
	// however large the archive.
	DefaultMemBody int64 = 1 << 20
)

// Environment variables holding the master secret and, during a
// rotation, the previous one. Isotope's names win over Fission's.
const (
	EnvSecret           = "ISOTOPE_INTERNAL_AUTH_SECRET"
	EnvSecretOld        = "ISOTOPE_INTERNAL_AUTH_SECRET_OLD"
	EnvFissionSecret    = "FISSION_INTERNAL_AUTH_SECRET"
	EnvFissionSecretOld = "FISSION_INTERNAL_AUTH_SECRET_OLD"
)

// Service names one channel; each channel has its own derived key. The
// first five are Fission's identifiers and must never be renamed.
type Service string

const (
	ServiceStoragesvc     Service = "storagesvc"
	ServiceFetcher        Service = "fetcher"
	ServiceBuilder        Service = "builder"
	ServiceExecutor       Service = "executor"
	ServiceRouterInternal Service = "router-internal"
	// ServiceRuntime is Isotope's own channel (not Fission's): the
	// fetcher's /specialize calls into an environment runtime such as
	// `isotope wasm-env`.
	ServiceRuntime Service = "runtime"
)

// DeriveKey returns the 32-byte signing key of svc under master, or nil
// when master is empty (auth disabled).
func DeriveKey(master []byte, svc Service) []byte {
	if len(master) == 0 {
		return nil
	}
	key, err := hkdf.Key(sha256.New, master, nil, KeyVersion+":"+string(svc), 32)
	if err != nil { // only for lengths beyond 255*32 bytes
		panic("hmac: hkdf: " + err.Error())
	}
	return key
}

// Canonical is the string a signature covers; bodySHA256 is the lowercase
// hex SHA-256 of the body (of nothing for a request without one).
func Canonical(method, requestURI, bodySHA256 string, unix int64) string {
	minute := unix - unix%60
	return method + "\n" + requestURI + "\n" + bodySHA256 + "\n" + strconv.FormatInt(minute, 10)
}

// Sign returns hex(HMAC-SHA256(key, Canonical(...))).
func Sign(key []byte, method, requestURI, bodySHA256 string, unix int64) string {
	m := stdhmac.New(sha256.New, key)
	m.Write([]byte(Canonical(method, requestURI, bodySHA256, unix)))
	return hex.EncodeToString(m.Sum(nil))
}

// emptySHA256 is hex(SHA-256("")), the body hash of a bodiless request.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Secrets are the master secrets: Current signs and verifies, Old (during
// a rotation) only verifies. An empty Current disables internal auth.
type Secrets struct {
	Current, Old []byte
}

// Enabled reports whether internal auth is on.
func (s Secrets) Enabled() bool { return len(s.Current) > 0 }

// SecretsFromEnv reads ISOTOPE_INTERNAL_AUTH_SECRET(_OLD), falling back to
// Fission's FISSION_INTERNAL_AUTH_SECRET(_OLD). The values are used as raw
// bytes, as Fission does.
func SecretsFromEnv() Secrets {
	return SecretsFrom(os.Getenv)
}

// SecretsFrom is SecretsFromEnv over any lookup (tests, a parsed env list).
func SecretsFrom(getenv func(string) string) Secrets {
	pick := func(a, b string) []byte {
		if v := getenv(a); v != "" {
			return []byte(v)
		}
		if v := getenv(b); v != "" {
			return []byte(v)
		}
		return nil
	}
	return Secrets{Current: pick(EnvSecret, EnvFissionSecret), Old: pick(EnvSecretOld, EnvFissionSecretOld)}
}

// DisableEnv is the environment entries that turn internal auth off in a
// child process (later entries win in os/exec), for roles that an embedded
// server runs as local processes and calls unsigned over loopback.
func DisableEnv() []string {
	return []string{EnvSecret + "=", EnvSecretOld + "=", EnvFissionSecret + "=", EnvFissionSecretOld + "="}
}
