package mutate_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/silogen/kaiwo-webhook/pkg/mutate"
)

const mountAnnots = `
  annotations:
    kaiwo.silogen.ai/workload-configmap: code
    kaiwo.silogen.ai/env: |
      envVars:
        - mountSecret: {name: GOOGLE_APPLICATION_CREDENTIALS, secret: gcs-credentials, key: gcs-credentials-json, path: /etc/gcp/credentials.json}
`

// cliJob is what the Kaiwo CLI rendered for a job: its own volume names, the Secret key chosen by items
// and mounted by subPath.
const cliJob = `apiVersion: batch/v1
kind: Job
metadata:
  name: train
  namespace: ml` + mountAnnots + `spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: rocm/pytorch
          volumeMounts:
            - {name: workload, mountPath: /workload}
            - {name: gcs-credentials, mountPath: /etc/gcp/credentials.json, subPath: credentials.json}
      volumes:
        - name: workload
          configMap: {name: code}
        - name: gcs-credentials
          secret:
            secretName: gcs-credentials
            items: [{key: gcs-credentials-json, path: credentials.json}]
`

// cliRayJob is the CLI's RayJob: the same mounts in the head and the worker, code at /workload.
const cliRayJob = `apiVersion: ray.io/v1
kind: RayJob
metadata:
  name: train
  namespace: ml` + mountAnnots + `spec:
  entrypoint: python /workload/main.py
  rayClusterSpec:
    headGroupSpec:
      rayStartParams: {}
      template:
        spec:
          containers:
            - name: ray-head
              image: rayproject/ray
              volumeMounts:
                - {name: workload, mountPath: /workload}
                - {name: gcs-credentials, mountPath: /etc/gcp/credentials.json, subPath: credentials.json}
          volumes:
            - {name: workload, configMap: {name: code}}
            - name: gcs-credentials
              secret: {secretName: gcs-credentials, items: [{key: gcs-credentials-json, path: credentials.json}]}
    workerGroupSpecs:
      - groupName: w
        rayStartParams: {}
        template:
          spec:
            containers:
              - name: ray-worker
                image: rayproject/ray
                volumeMounts:
                  - {name: workload, mountPath: /workload}
                  - {name: gcs-credentials, mountPath: /etc/gcp/credentials.json, subPath: credentials.json}
            volumes:
              - {name: workload, configMap: {name: code, defaultMode: 420}}
              - name: gcs-credentials
                secret: {secretName: gcs-credentials, items: [{key: gcs-credentials-json, path: credentials.json}]}
`

// helmJob is how charts commonly write it: the whole Secret as a directory, the ConfigMap by another name.
const helmJob = `apiVersion: batch/v1
kind: Job
metadata:
  name: train
  namespace: ml` + mountAnnots + `spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: rocm/pytorch
          volumeMounts:
            - {name: app-code, mountPath: /workload, readOnly: true}
            - {name: gcp, mountPath: /etc/gcp}
      volumes:
        - {name: app-code, configMap: {name: code, defaultMode: 493}}
        - name: gcp
          secret: {secretName: gcs-credentials, items: [{key: gcs-credentials-json, path: credentials.json}]}
`

// helmDeployment mounts the Secret key by subPath without items, as charts also do.
const helmDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: serve
  namespace: ml
  annotations:
    kaiwo.silogen.ai/workload-configmap: code
    kaiwo.silogen.ai/env: |
      envVars:
        - mountSecret: {name: GOOGLE_APPLICATION_CREDENTIALS, secret: gcs-credentials, key: gcs-credentials-json, path: /etc/gcp/credentials.json}
spec:
  selector: {matchLabels: {app: serve}}
  template:
    metadata: {labels: {app: serve}}
    spec:
      containers:
        - name: app
          image: vllm
          volumeMounts:
            - {name: code, mountPath: /workload/app}
            - {name: creds, mountPath: /etc/gcp/credentials.json, subPath: gcs-credentials-json, readOnly: true}
      volumes:
        - {name: code, configMap: {name: code}}
        - {name: creds, secret: {secretName: gcs-credentials}}
`

func decodeYAML(t *testing.T, s string) client.Object {
	t.Helper()
	var obj client.Object
	switch {
	case strings.Contains(s, "kind: Job"):
		obj = &batchv1.Job{}
	case strings.Contains(s, "kind: RayJob"):
		obj = &rayv1.RayJob{}
	default:
		obj = &appsv1.Deployment{}
	}
	if err := yaml.UnmarshalStrict([]byte(s), obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func podSpecs(o client.Object) []corev1.PodSpec {
	switch x := o.(type) {
	case *batchv1.Job:
		return []corev1.PodSpec{x.Spec.Template.Spec}
	case *appsv1.Deployment:
		return []corev1.PodSpec{x.Spec.Template.Spec}
	case *rayv1.RayJob:
		out := []corev1.PodSpec{x.Spec.RayClusterSpec.HeadGroupSpec.Template.Spec}
		for _, g := range x.Spec.RayClusterSpec.WorkerGroupSpecs {
			out = append(out, g.Template.Spec)
		}
		return out
	}
	return nil
}

// TestAgreeingMountsAreLeftAlone: an object that already mounts the same ConfigMap, or the same Secret
// key as a file, at Kaiwo's path, under its own volume name, is accepted and its mounts left as they are.
func TestAgreeingMountsAreLeftAlone(t *testing.T) {
	for name, src := range map[string]string{"kaiwo CLI job": cliJob, "kaiwo CLI rayjob": cliRayJob, "helm chart job": helmJob, "helm chart deployment": helmDeployment} {
		t.Run(name, func(t *testing.T) {
			in := decodeYAML(t, src)
			out, w := run(t, in, nil)
			before, after := podSpecs(in), podSpecs(out)
			for i := range after {
				vols := slices.DeleteFunc(slices.Clone(after[i].Volumes), func(v corev1.Volume) bool { return v.Name == "dshm" })
				if diff := cmp.Diff(before[i].Volumes, vols); diff != "" {
					t.Errorf("pod %d: volumes changed (-before,+after):\n%s", i, diff)
				}
				for j, c := range after[i].Containers {
					mounts := slices.DeleteFunc(slices.Clone(c.VolumeMounts), func(m corev1.VolumeMount) bool { return m.MountPath == "/dev/shm" })
					if diff := cmp.Diff(before[i].Containers[j].VolumeMounts, mounts); diff != "" {
						t.Errorf("pod %d container %s: mounts changed (-before,+after):\n%s", i, c.Name, diff)
					}
					if env := envOf(c); env["GOOGLE_APPLICATION_CREDENTIALS"] != "/etc/gcp/credentials.json" {
						t.Errorf("container %s: env %v lacks the credentials path", c.Name, env)
					}
				}
			}
			if strings.Contains(strings.Join(w, "\n"), "mounted") {
				t.Errorf("warnings %q say Kaiwo mounted something", w)
			}
			again, w2 := run(t, out, nil)
			if diff := cmp.Diff(out, again); diff != "" || len(w2) > 0 {
				t.Errorf("second pass changed (-first,+second):\n%s\nwarnings %q", diff, w2)
			}
		})
	}
}

// TestDifferentMountsStillConflict: the same path with other content is denied, whatever the names.
func TestDifferentMountsStillConflict(t *testing.T) {
	cases := map[string]struct {
		src, from, to string
		want          []string
	}{
		"another ConfigMap at /workload": {src: cliJob, from: "configMap: {name: code}", to: "configMap: {name: other-code}",
			want: []string{"volumeMounts[0].mountPath", `"/workload"`, `already mounts volume "workload"`, `Kaiwo mounts volume "kaiwo-workload"`}},
		"part of the ConfigMap at /workload": {src: helmJob, from: "configMap: {name: code, defaultMode: 493}", to: "configMap: {name: code, items: [{key: a, path: a}]}",
			want: []string{"volumeMounts[0].mountPath", `"/workload"`, `already mounts volume "app-code"`}},
		"another Secret at the file's path": {src: cliJob, from: "secretName: gcs-credentials\n", to: "secretName: other-credentials\n",
			want: []string{"volumeMounts[1].mountPath", `"/etc/gcp/credentials.json"`, `already mounts volume "gcs-credentials"`}},
		"another key of the Secret at the file's path": {src: cliJob, from: "items: [{key: gcs-credentials-json,", to: "items: [{key: other-key,",
			want: []string{"volumeMounts[1].mountPath", `"/etc/gcp/credentials.json"`}},
		"another key by subPath": {src: helmDeployment, from: "subPath: gcs-credentials-json", to: "subPath: token",
			want: []string{"volumeMounts[1].mountPath", `"/etc/gcp/credentials.json"`, `already mounts volume "creds"`}},
		"an emptyDir at /workload/app": {src: helmDeployment, from: "{name: code, configMap: {name: code}}", to: "{name: code, emptyDir: {}}",
			want: []string{"volumeMounts[0].mountPath", `"/workload/app"`, `already mounts volume "code"`}},
		"a ConfigMap mount by subPath": {src: cliJob, from: "{name: workload, mountPath: /workload}", to: "{name: workload, mountPath: /workload, subPath: x}",
			want: []string{"volumeMounts[0].mountPath", `"/workload"`}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(tc.src, tc.from) {
				t.Fatalf("the case does not apply: %q not in the source", tc.from)
			}
			obj := decodeYAML(t, strings.Replace(tc.src, tc.from, tc.to, 1))
			_, err := mutateIn(mutate.Input{Object: obj})
			wantConflict(t, err, tc.want...)
		})
	}
}

// TestAgreeingMountInOneContainerOnly: a container that lacks the mount still gets Kaiwo's, and the
// pod gets Kaiwo's volume for it.
func TestAgreeingMountInOneContainerOnly(t *testing.T) {
	src := strings.Replace(helmDeployment, "      volumes:\n", "        - {name: sidecar, image: envoy}\n      volumes:\n", 1)
	out, _ := run(t, decodeYAML(t, src), nil)
	ps := podSpecs(out)[0]
	if !slices.ContainsFunc(ps.Volumes, func(v corev1.Volume) bool { return v.Name == "kaiwo-workload" }) {
		t.Errorf("volumes %v lack kaiwo-workload for the sidecar", ps.Volumes)
	}
	if !slices.ContainsFunc(ps.Containers[1].VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/workload/app" && m.Name == "kaiwo-workload" }) {
		t.Errorf("sidecar mounts %v lack Kaiwo's /workload/app", ps.Containers[1].VolumeMounts)
	}
	if diff := cmp.Diff(decodeYAML(t, src).(*appsv1.Deployment).Spec.Template.Spec.Containers[0].VolumeMounts, slices.DeleteFunc(ps.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/dev/shm" })); diff != "" {
		t.Errorf("the agreeing container's mounts changed:\n%s", diff)
	}
}
