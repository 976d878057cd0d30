package digest_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/statesync/statesync/go/canonical"
	"github.com/statesync/statesync/go/digest"
	"github.com/statesync/statesync/go/internal/vectors"
)

type keyValue struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// build hashes each value as a worker does and returns the namespace digest.
func build(t *testing.T, items []keyValue) *digest.Namespace {
	t.Helper()
	ns := digest.New()
	for _, it := range items {
		ns.Set(it.Key, valueHash(t, it.Value))
	}
	return ns
}

func valueHash(t *testing.T, raw json.RawMessage) digest.Hash {
	t.Helper()
	v, err := canonical.Parse(raw)
	if err != nil {
		t.Fatalf("vector value %s: %v", raw, err)
	}
	h, err := canonical.Hash(v)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

func TestDigestVectors(t *testing.T) {
	var set struct {
		EmptyRoot string `json:"empty_root"`
		Cases     []struct {
			Name  string `json:"name"`
			Items []struct {
				keyValue
				Canonical string `json:"canonical"`
				ValueHash string `json:"value_hash"`
				Position  string `json:"position"`
				Leaf      string `json:"leaf"`
			} `json:"items"`
			Count uint64 `json:"count"`
			Root  string `json:"root"`
			Nodes []struct {
				Prefix      string `json:"prefix"`
				Count       uint64 `json:"count"`
				Sum         string `json:"sum"`
				Fingerprint string `json:"fingerprint"`
			} `json:"nodes"`
		} `json:"cases"`
		DifferingKeys []struct {
			Name     string     `json:"name"`
			A        []keyValue `json:"a"`
			B        []keyValue `json:"b"`
			Expected []string   `json:"expected"`
		} `json:"differing_keys"`
	}
	vectors.Load(t, "digest", &set)
	if got := digest.EmptyRoot; hexOf(got[:]) != set.EmptyRoot {
		t.Fatalf("empty root %x, want %s", got, set.EmptyRoot)
	}
	for _, c := range set.Cases {
		t.Run(c.Name, func(t *testing.T) {
			var items []keyValue
			for _, it := range c.Items {
				b, err := canonical.Canonicalize(it.Value)
				if err != nil || string(b) != it.Canonical {
					t.Fatalf("%s: canonical %q (%v), want %q", it.Key, b, err, it.Canonical)
				}
				vh := valueHash(t, it.Value)
				pos := digest.Position(it.Key)
				leaf := digest.Leaf(it.Key, vh).Bytes()
				if hexOf(vh[:]) != it.ValueHash || hexOf(pos[:]) != it.Position || hexOf(leaf[:]) != it.Leaf {
					t.Fatalf("%s: hash %x position %x leaf %x", it.Key, vh, pos, leaf)
				}
				items = append(items, it.keyValue)
			}
			forward := build(t, items)
			reversed := slices.Clone(items)
			slices.Reverse(reversed)
			for _, ns := range []*digest.Namespace{forward, build(t, reversed)} {
				root := ns.Root()
				if ns.Count() != c.Count || hexOf(root[:]) != c.Root {
					t.Fatalf("count %d root %x, want %d %s", ns.Count(), root, c.Count, c.Root)
				}
			}
			for _, want := range c.Nodes {
				node := forward.Node(want.Prefix)
				sum, fp := node.Sum.Bytes(), node.Fingerprint()
				if node.Count != want.Count || hexOf(sum[:]) != want.Sum || hexOf(fp[:]) != want.Fingerprint {
					t.Fatalf("node %q: count %d sum %x fingerprint %x", want.Prefix, node.Count, sum, fp)
				}
			}
		})
	}
	for _, c := range set.DifferingKeys {
		t.Run("differing/"+c.Name, func(t *testing.T) {
			a, b := build(t, c.A), build(t, c.B)
			want := c.Expected
			if want == nil {
				want = []string{}
			}
			for _, got := range [][]string{digest.DifferingKeys(a, b), digest.DifferingKeys(b, a)} {
				if got == nil {
					got = []string{}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("differing %q, want %q", got, want)
				}
			}
		})
	}
}

func TestSetDeleteRestoresRoot(t *testing.T) {
	ns := digest.New()
	ns.Set("a", digest.Hash{1})
	before := ns.Root()
	ns.Set("b", digest.Hash{2})
	ns.Set("a", digest.Hash{3})
	ns.Set("a", digest.Hash{1})
	ns.Delete("b")
	ns.Delete("missing")
	if ns.Root() != before || ns.Count() != 1 {
		t.Fatalf("root %x count %d after undoing changes, want %x 1", ns.Root(), ns.Count(), before)
	}
	ns.Delete("a")
	if ns.Root() != digest.EmptyRoot {
		t.Fatal("an emptied namespace does not have the empty root")
	}
}

type node struct {
	Prefix   string `json:"prefix"`
	IsLeaves bool   `json:"is_leaves"`
	Children string `json:"children"`
	Leaves   string `json:"leaves"`
}

type nameQuery struct {
	Prefix string `json:"prefix"`
	Leaves string `json:"leaves"`
}

func checkAnswers(t *testing.T, ns *digest.Namespace, prefixes []string, want []node) {
	t.Helper()
	if len(prefixes) != len(want) {
		t.Fatalf("%d prefixes, %d expected nodes", len(prefixes), len(want))
	}
	for i, p := range prefixes {
		got, err := ns.Answer(p)
		if err != nil {
			t.Fatal(err)
		}
		w := want[i]
		if got.Prefix != w.Prefix || got.IsLeaves != w.IsLeaves || hexOf(got.Children) != w.Children || hexOf(got.Leaves) != w.Leaves {
			t.Fatalf("node %q: leaves=%v children %x leaves %x, want %+v", p, got.IsLeaves, got.Children, got.Leaves, w)
		}
	}
}

func checkNames(t *testing.T, ns *digest.Namespace, q nameQuery, want []string) []string {
	t.Helper()
	got, err := ns.Names(q.Prefix, vectors.Hex(t, q.Leaves))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || (len(got) > 0 && !slices.Equal(got, want)) {
		t.Fatalf("names under %q: %q, want %q", q.Prefix, got, want)
	}
	return got
}

func TestDescentVectors(t *testing.T) {
	var set struct {
		LeafLimit int `json:"leaf_limit"`
		Answers   []struct {
			Name     string     `json:"name"`
			Items    []keyValue `json:"items"`
			Prefixes []string   `json:"prefixes"`
			Nodes    []node     `json:"nodes"`
		} `json:"answers"`
		Names []struct {
			Name  string     `json:"name"`
			Items []keyValue `json:"items"`
			nameQuery
			Names []string `json:"names"`
		} `json:"names"`
		Descents []struct {
			Name   string     `json:"name"`
			Worker []keyValue `json:"worker"`
			Rounds []struct {
				Prefixes []string    `json:"prefixes"`
				Names    []nameQuery `json:"names"`
				Nodes    []node      `json:"nodes"`
				Named    []string    `json:"named"`
			} `json:"rounds"`
		} `json:"descents"`
	}
	vectors.Load(t, "descent", &set)
	if set.LeafLimit != digest.LeafLimit {
		t.Fatalf("vectors assume leaf_limit %d, this worker uses %d", set.LeafLimit, digest.LeafLimit)
	}
	for _, v := range set.Answers {
		t.Run("answers/"+v.Name, func(t *testing.T) { checkAnswers(t, build(t, v.Items), v.Prefixes, v.Nodes) })
	}
	for _, v := range set.Names {
		t.Run("names/"+v.Name, func(t *testing.T) { checkNames(t, build(t, v.Items), v.nameQuery, v.Names) })
	}
	for _, v := range set.Descents {
		t.Run("descents/"+v.Name, func(t *testing.T) {
			ns := build(t, v.Worker)
			for _, round := range v.Rounds {
				checkAnswers(t, ns, round.Prefixes, round.Nodes)
				var named []string
				for _, q := range round.Names {
					got, err := ns.Names(q.Prefix, vectors.Hex(t, q.Leaves))
					if err != nil {
						t.Fatal(err)
					}
					named = append(named, got...)
				}
				if len(named) != len(round.Named) || (len(named) > 0 && !slices.Equal(named, round.Named)) {
					t.Fatalf("named %q, want %q", named, round.Named)
				}
			}
		})
	}
}

// TestDifferingKeysMatchesAComparisonOfEveryKey builds random pairs of
// namespaces that differ in a few keys and checks the descent finds exactly
// the keys a full comparison finds, and that equal contents give equal roots
// whatever the insertion order.
func TestDifferingKeysMatchesAComparisonOfEveryKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for round := range 30 {
		n := rng.IntN(600)
		a, b := digest.New(), digest.New()
		want := map[string]bool{}
		for i := range n {
			key := fmt.Sprintf("key-%d-%d", round, i)
			h := digest.Hash{byte(i), byte(i >> 8), 1}
			a.Set(key, h)
			switch rng.IntN(40) {
			case 0: // only in a
				want[key] = true
			case 1: // another value in b
				b.Set(key, digest.Hash{2})
				want[key] = true
			default:
				b.Set(key, h)
			}
		}
		if rng.IntN(2) == 0 {
			b.Set("only-in-b", digest.Hash{3})
			want["only-in-b"] = true
		}
		got := digest.DifferingKeys(a, b)
		if len(got) != len(want) {
			t.Fatalf("round %d: %d differing keys, want %d", round, len(got), len(want))
		}
		for _, k := range got {
			if !want[k] {
				t.Fatalf("round %d: %q reported but equal", round, k)
			}
		}
		if (len(want) == 0) != (a.Root() == b.Root()) {
			t.Fatalf("round %d: roots equal=%v with %d differing keys", round, a.Root() == b.Root(), len(want))
		}
	}
}
