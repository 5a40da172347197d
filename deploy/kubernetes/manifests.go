// Package manifests holds influxrotate's Kubernetes manifests (this
// directory, kustomize-ready) and decodes them strictly with client-go's
// scheme, so that tests can prove them valid and derive from them what the
// controller is allowed to do (the Role).
package manifests

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// FS is this directory: the base (kustomization.yaml and its resources) and
// examples/.
//
//go:embed *.yaml examples/*.yaml
var FS embed.FS

// KustomizationFile is the name kustomize looks for.
const KustomizationFile = "kustomization.yaml"

// Kustomization is the part of kustomize's Kustomization these manifests
// use; any other field fails the strict decode, so a misspelt one is caught.
type Kustomization struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Namespace  string            `json:"namespace,omitempty"`
	Resources  []string          `json:"resources"`
	Labels     []KustomizeLabels `json:"labels,omitempty"`
	Images     []KustomizeImage  `json:"images,omitempty"`
}

// KustomizeLabels is an entry of a Kustomization's labels.
type KustomizeLabels struct {
	Pairs map[string]string `json:"pairs"`
}

// KustomizeImage is an entry of a Kustomization's images.
type KustomizeImage struct {
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
}

// strict decodes YAML into the typed objects of client-go's scheme and fails
// on unknown or duplicate fields.
var strict = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	kjson.SerializerOptions{Yaml: true, Strict: true})

// Decode decodes every document of a (multi-document) YAML manifest into a
// typed object. An unknown kind, an unknown field, a duplicate field or a
// value of the wrong type is an error naming the document.
func Decode(data []byte) ([]runtime.Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []runtime.Object
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := strict.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		out = append(out, obj)
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			b.Write(line)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// DecodeKustomization decodes a kustomization.yaml strictly.
func DecodeKustomization(data []byte) (*Kustomization, error) {
	var k Kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		return nil, err
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		return nil, fmt.Errorf("apiVersion %q kind %q: want kustomize.config.k8s.io/v1beta1 Kustomization", k.APIVersion, k.Kind)
	}
	return &k, nil
}

// Set is a kustomization directory decoded: its Kustomization and the
// objects of each resource file, in the order listed.
type Set struct {
	Dir           string
	Kustomization *Kustomization
	Files         []string
	Objects       map[string][]runtime.Object
}

// Load decodes the kustomization in dir of fsys and every resource it
// lists; a YAML file of dir that the kustomization does not list is an
// error, as `kubectl apply -k` would silently skip it.
func Load(fsys fs.FS, dir string) (*Set, error) {
	data, err := fs.ReadFile(fsys, path.Join(dir, KustomizationFile))
	if err != nil {
		return nil, err
	}
	k, err := DecodeKustomization(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path.Join(dir, KustomizationFile), err)
	}
	s := &Set{Dir: dir, Kustomization: k, Objects: map[string][]runtime.Object{}}
	listed := map[string]bool{}
	for _, res := range k.Resources {
		p := path.Join(dir, res)
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("%s: resource %s: %w", path.Join(dir, KustomizationFile), res, err)
		}
		objs, err := Decode(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if len(objs) == 0 {
			return nil, fmt.Errorf("%s: no object", p)
		}
		s.Files = append(s.Files, res)
		s.Objects[res] = objs
		listed[res] = true
	}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var unlisted []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".yaml") && e.Name() != KustomizationFile && !listed[e.Name()] {
			unlisted = append(unlisted, e.Name())
		}
	}
	if len(unlisted) > 0 {
		sort.Strings(unlisted)
		return nil, fmt.Errorf("%s: not in %s: %s", dir, KustomizationFile, strings.Join(unlisted, ", "))
	}
	return s, nil
}

// All returns every object of the set.
func (s *Set) All() []runtime.Object {
	var out []runtime.Object
	for _, f := range s.Files {
		out = append(out, s.Objects[f]...)
	}
	return out
}

// Base loads the base kustomization (the controller's manifests).
func Base() (*Set, error) { return Load(FS, ".") }

// Examples loads the example Telegraf Deployments.
func Examples() (*Set, error) { return Load(FS, "examples") }

// Role returns the controller's Role from the base.
func Role() (*rbacv1.Role, error) {
	s, err := Base()
	if err != nil {
		return nil, err
	}
	var roles []*rbacv1.Role
	for _, o := range s.All() {
		if r, ok := o.(*rbacv1.Role); ok {
			roles = append(roles, r)
		}
	}
	if len(roles) != 1 {
		return nil, fmt.Errorf("the base has %d Roles, want 1", len(roles))
	}
	return roles[0], nil
}
