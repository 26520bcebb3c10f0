// Command k8scheck decodes every object of a rendered manifest stream (`helm template` output)
// strictly against the Kubernetes API types: an unknown or misspelt field, a wrong type, a
// duplicated key, a kind it does not know, or two objects of one kind and name fail the check.
//
// Kubernetes kinds come from k8s.io/api (registered in a runtime.Scheme); ServiceMonitor and
// PrometheusRule from the prometheus-operator's own Go types. Decoding is sigs.k8s.io/yaml's
// UnmarshalStrict (YAML to JSON, then encoding/json with DisallowUnknownFields).
//
// Usage: k8scheck [FILE]   (stdin without FILE). Prints one "ok" line per object; exit 1 on any error.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

func newScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, policyv1.AddToScheme,
		networkingv1.AddToScheme, rbacv1.AddToScheme, autoscalingv2.AddToScheme,
		monitoringv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	return scheme, nil
}

// object is what every Kubernetes object has: its kind and its metadata.
type object interface {
	runtime.Object
	metav1.Object
}

func check(scheme *runtime.Scheme, doc []byte) (string, error) {
	var meta metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return "", fmt.Errorf("not a YAML object: %w", err)
	}
	if meta.APIVersion == "" || meta.Kind == "" {
		return "", errors.New("apiVersion and kind are required")
	}
	gv, err := schema.ParseGroupVersion(meta.APIVersion)
	if err != nil {
		return "", fmt.Errorf("apiVersion %q: %w", meta.APIVersion, err)
	}
	gvk := gv.WithKind(meta.Kind)
	typed, err := scheme.New(gvk)
	if err != nil {
		return "", fmt.Errorf("%s is not a kind this check knows (k8s.io/api, monitoring.coreos.com/v1)", gvk)
	}
	if err := yaml.UnmarshalStrict(doc, typed); err != nil {
		return "", fmt.Errorf("%s: %w", gvk.Kind, err)
	}
	obj, ok := typed.(object)
	if !ok {
		return "", fmt.Errorf("%s has no metadata", gvk.Kind)
	}
	if obj.GetName() == "" {
		return "", fmt.Errorf("%s without metadata.name", gvk.Kind)
	}
	return fmt.Sprintf("%s/%s", gvk.Kind, obj.GetName()), nil
}

func run(in io.Reader, out io.Writer) error {
	scheme, err := newScheme()
	if err != nil {
		return err
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(in))
	seen := map[string]bool{}
	var failures []string
	count := 0
	for n := 1; ; n++ {
		doc, err := reader.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("document %d: %w", n, err)
		}
		if isEmpty(doc) {
			continue
		}
		name, err := check(scheme, doc)
		if err != nil {
			failures = append(failures, fmt.Sprintf("document %d (%s): %v", n, source(doc), err))
			continue
		}
		if seen[name] {
			failures = append(failures, fmt.Sprintf("document %d: %s rendered twice", n, name))
			continue
		}
		seen[name] = true
		count++
		fmt.Fprintf(out, "ok %s\n", name)
	}
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "\n"))
	}
	if count == 0 {
		return errors.New("no objects in the input")
	}
	return nil
}

// isEmpty: a document of comments and blank lines only (helm leaves those for empty templates).
func isEmpty(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' && !bytes.Equal(line, []byte("---")) {
			return false
		}
	}
	return true
}

// source: the "# Source: chart/templates/x.yaml" line helm puts above each object, if any.
func source(doc []byte) string {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if s, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("# Source: ")); ok {
			return string(s)
		}
	}
	return "no source line"
}

func main() {
	in := io.Reader(os.Stdin)
	if len(os.Args) > 2 {
		fmt.Fprintln(os.Stderr, "usage: k8scheck [FILE]")
		os.Exit(2)
	}
	if len(os.Args) == 2 {
		f, err := os.Open(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defer f.Close()
		in = f
	}
	if err := run(in, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "k8scheck:", err)
		os.Exit(1)
	}
}
