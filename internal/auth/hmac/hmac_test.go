package hmac

import (
	"bytes"
	stdhmac "crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
)

// The master secret and request of the fixed test vector.
const (
	vecMaster = "fission-internal-auth-test-master"
	vecBody   = `{"hello":"world"}`
	vecURI    = "/v1/archive?id=%2Ffission%2Fabc&x=1"
	vecTS     = 1767225659 // 59 s into its minute: the signature uses ...600
)

// TestVectorIndependent checks DeriveKey and Sign against values computed
// outside Go (Python's hmac and hashlib, HKDF written out from RFC 5869)
// from Fission's formula.
func TestVectorIndependent(t *testing.T) {
	key := DeriveKey([]byte(vecMaster), ServiceStoragesvc)
	if got, want := hex.EncodeToString(key), "795ec5b5704cfdcc50598b4fe700846729cbfb60f03f28f99a9cac95a91e5c93"; got != want {
		t.Fatalf("storagesvc key = %s, want %s", got, want)
	}
	sum := sha256.Sum256([]byte(vecBody))
	sig := Sign(key, "POST", vecURI, hex.EncodeToString(sum[:]), vecTS)
	if want := "9c84d05764d855454bee7f3225357fd13d0a60da55a5de37fa48aae387a14ac0"; sig != want {
		t.Fatalf("signature = %s, want %s", sig, want)
	}
	fk := DeriveKey([]byte(vecMaster), ServiceFetcher)
	if got, want := hex.EncodeToString(fk), "ce77a017ea6abc62a292fc44d7d035f385ef55b7ba61f65edccc46d23f696b47"; got != want {
		t.Fatalf("fetcher key = %s, want %s", got, want)
	}
	if got, want := Sign(fk, "GET", "/healthz2", emptySHA256, vecTS), "34ed765079c68a16b6363d16b02cb3651797c4853fd6ffaba679513fe69418f1"; got != want {
		t.Fatalf("bodiless signature = %s, want %s", got, want)
	}
}

// TestVectorFromFormula recomputes the vector in the test from the
// formula with HKDF spelled out over crypto/hmac, for several services
// and timestamps, so the package's use of crypto/hkdf cannot drift.
func TestVectorFromFormula(t *testing.T) {
	mac := func(key, msg []byte) []byte {
		m := stdhmac.New(sha256.New, key)
		m.Write(msg)
		return m.Sum(nil)
	}
	hkdf := func(ikm []byte, info string) []byte {
		prk := mac(make([]byte, 32), ikm) // no salt = HashLen zero bytes
		return mac(prk, append([]byte(info), 1))[:32]
	}
	body := []byte(vecBody)
	bh := sha256.Sum256(body)
	for _, svc := range []Service{ServiceStoragesvc, ServiceFetcher, ServiceBuilder, ServiceExecutor, ServiceRouterInternal} {
		for _, ts := range []int64{vecTS, 1767225600, 1767225660, 0} {
			key := hkdf([]byte(vecMaster), "fission-internal-v1:"+string(svc))
			if !bytes.Equal(DeriveKey([]byte(vecMaster), svc), key) {
				t.Fatalf("%s: derived key differs from HKDF written out", svc)
			}
			canonical := fmt.Sprintf("POST\n%s\n%x\n%d", vecURI, bh, ts/60*60)
			want := hex.EncodeToString(mac(key, []byte(canonical)))
			if got := Sign(key, "POST", vecURI, hex.EncodeToString(bh[:]), ts); got != want {
				t.Fatalf("%s at %d: signature %s, want %s", svc, ts, got, want)
			}
		}
	}
	if sum := sha256.Sum256(nil); hex.EncodeToString(sum[:]) != emptySHA256 {
		t.Fatal("emptySHA256 is not the hash of nothing")
	}
}

func TestDeriveKeyEmptyMasterDisables(t *testing.T) {
	if DeriveKey(nil, ServiceFetcher) != nil {
		t.Fatal("an empty master must derive no key")
	}
	if (Secrets{}).Enabled() {
		t.Fatal("empty secrets must be disabled")
	}
}

func TestSecretsFromEnvNames(t *testing.T) {
	env := map[string]string{EnvFissionSecret: "f", EnvFissionSecretOld: "fo"}
	s := SecretsFrom(func(k string) string { return env[k] })
	if string(s.Current) != "f" || string(s.Old) != "fo" {
		t.Fatalf("Fission's names: got %q/%q", s.Current, s.Old)
	}
	env[EnvSecret], env[EnvSecretOld] = "i", "io"
	s = SecretsFrom(func(k string) string { return env[k] })
	if string(s.Current) != "i" || string(s.Old) != "io" {
		t.Fatalf("Isotope's names must win: got %q/%q", s.Current, s.Old)
	}
}
