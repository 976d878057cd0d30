package changelog_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/statesync/statesync/go/canonical"
	"github.com/statesync/statesync/go/changelog"
	"github.com/statesync/statesync/go/internal/vectors"
)

func hash32(t *testing.T, s string) [32]byte {
	t.Helper()
	var out [32]byte
	copy(out[:], vectors.Hex(t, s))
	return out
}

func TestLogVectors(t *testing.T) {
	var set struct {
		Genesis string `json:"genesis_prev_hash"`
		Chains  []struct {
			Name    string `json:"name"`
			Anchor  string `json:"anchor"`
			Changes []struct {
				Change struct {
					CommandID  string          `json:"command_id"`
					CreateRev  int64           `json:"create_rev"`
					Key        string          `json:"key"`
					NS         string          `json:"ns"`
					Op         string          `json:"op"`
					PrevModRev int64           `json:"prev_mod_rev"`
					Rev        int64           `json:"rev"`
					Seq        int64           `json:"seq"`
					Trace      *string         `json:"trace"`
					TsMs       int64           `json:"ts_ms"`
					Value      json.RawMessage `json:"value"`
					Version    int64           `json:"version"`
				} `json:"change"`
				CanonicalHex string `json:"canonical_hex"`
				PrevHash     string `json:"prev_hash"`
				Hash         string `json:"hash"`
			} `json:"changes"`
			Head string `json:"head"`
		} `json:"chains"`
	}
	vectors.Load(t, "log", &set)
	if set.Genesis != hex.EncodeToString(changelog.GenesisHash[:]) {
		t.Fatalf("genesis %s", set.Genesis)
	}
	for _, chain := range set.Chains {
		t.Run(chain.Name, func(t *testing.T) {
			prev := hash32(t, chain.Anchor)
			var changes []changelog.Change
			var hashes [][32]byte
			for _, v := range chain.Changes {
				value, err := canonical.Parse(v.Change.Value)
				if err != nil {
					t.Fatal(err)
				}
				c := v.Change
				change := changelog.Change{
					CommandID: c.CommandID, CreateRev: c.CreateRev, Key: c.Key, NS: c.NS, Op: c.Op,
					PrevModRev: c.PrevModRev, Rev: c.Rev, Seq: c.Seq, Trace: c.Trace, TsMs: c.TsMs,
					Value: value, Version: c.Version,
				}
				b, err := change.CanonicalBytes()
				if err != nil || !bytes.Equal(b, vectors.Hex(t, v.CanonicalHex)) {
					t.Fatalf("rev %d seq %d: canonical %s (%v)", c.Rev, c.Seq, b, err)
				}
				if prev != hash32(t, v.PrevHash) {
					t.Fatalf("rev %d seq %d: prev %x, vector says %s", c.Rev, c.Seq, prev, v.PrevHash)
				}
				prev = changelog.ChainHash(prev, b)
				if prev != hash32(t, v.Hash) {
					t.Fatalf("rev %d seq %d: hash %x, want %s", c.Rev, c.Seq, prev, v.Hash)
				}
				changes = append(changes, change)
				hashes = append(hashes, prev)
			}
			if prev != hash32(t, chain.Head) {
				t.Fatalf("head %x, want %s", prev, chain.Head)
			}
			head, err := changelog.Verify(hash32(t, chain.Anchor), changes, hashes)
			if err != nil || head != prev {
				t.Fatalf("Verify: %x %v", head, err)
			}
			if len(changes) > 1 {
				changes[0].Seq++
				if _, err := changelog.Verify(hash32(t, chain.Anchor), changes, hashes); err == nil {
					t.Fatal("Verify accepted an altered change")
				}
			}
		})
	}
}
