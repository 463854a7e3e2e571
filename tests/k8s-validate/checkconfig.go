package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// RunCheckConfig runs `wasmgate serve --check-config` with the gate container's arguments
// and plain environment variables. The files that the container's volumes would hold are
// written under options.Root first, and every argument or variable that names a path inside
// a mount is rewritten to point there, so the binary reads what the Pod would read.
func RunCheckConfig(cluster *Cluster, gate Gate, options CheckOptions) error {
	root := filepath.Join(options.Root, gate.Named.Object.Name)
	mounts, err := materializeMounts(cluster, gate, root, options.SecretFiles)
	if err != nil {
		return fmt.Errorf("writing the files of container %q failed: %w", gate.Container.Name, err)
	}

	arguments := []string{"serve", "--check-config"}
	for _, argument := range gate.Container.Args {
		arguments = append(arguments, rewriteArgument(argument, root, mounts))
	}
	environment := []string{}
	for _, env := range gate.Container.Env {
		if env.ValueFrom != nil {
			if strings.HasPrefix(env.Name, "WASMGATE_") {
				return fmt.Errorf("environment variable %s comes from valueFrom, which the check cannot resolve", env.Name)
			}
			continue
		}
		environment = append(environment, env.Name+"="+rewritePath(env.Value, root, mounts))
	}

	command := exec.Command(options.Wasmgate, arguments...)
	command.Env = environment
	var stdout, stderr bytes.Buffer
	command.Stdout, command.Stderr = &stdout, &stderr
	err = command.Run()
	shown := quoteCommand(append([]string{"wasmgate"}, arguments...))
	if err != nil {
		var exitError *exec.ExitError
		if !errors.As(err, &exitError) {
			return fmt.Errorf("running %s failed: %w", options.Wasmgate, err)
		}
		return fmt.Errorf("`%s` exited with %d: %s", shown, exitError.ExitCode(), strings.TrimSpace(stderr.String()))
	}
	fmt.Printf("check-config passed: Deployment %q: %s\n  %s\n", gate.Named.Object.Name, shown, strings.TrimSpace(stdout.String()))
	return nil
}

// materializeMounts writes the files of each volume mounted in the gate container below
// root and returns the mount paths, longest first. ConfigMap contents come from the render
// or -existing; Secret contents come from -secret-file, because Secrets are not rendered.
func materializeMounts(cluster *Cluster, gate Gate, root string, secretFiles map[string]string) ([]string, error) {
	var mountPaths []string
	for _, mount := range gate.Container.VolumeMounts {
		volume := findVolume(gate.Pod, mount.Name)
		if volume == nil {
			return nil, fmt.Errorf("volumeMount %q names no volume of the Pod", mount.Name)
		}
		files, err := volumeFiles(cluster, volume, secretFiles)
		if err != nil {
			return nil, err
		}
		target := filepath.Join(root, filepath.FromSlash(mount.MountPath))
		if mount.SubPath != "" {
			content, found := files[mount.SubPath]
			if !found {
				return nil, fmt.Errorf("volumeMount %q: subPath %q is not a file of volume %q", mount.Name, mount.SubPath, volume.Name)
			}
			if err := writeFile(target, content); err != nil {
				return nil, err
			}
		} else {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return nil, err
			}
			for name, content := range files {
				if err := writeFile(filepath.Join(target, filepath.FromSlash(name)), content); err != nil {
					return nil, err
				}
			}
		}
		mountPaths = append(mountPaths, path.Clean(mount.MountPath))
	}
	sort.Slice(mountPaths, func(i, j int) bool { return len(mountPaths[i]) > len(mountPaths[j]) })
	return mountPaths, nil
}

func writeFile(file string, content []byte) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return os.WriteFile(file, content, 0o644)
}

func findVolume(pod *corev1.PodSpec, name string) *corev1.Volume {
	for index := range pod.Volumes {
		if pod.Volumes[index].Name == name {
			return &pod.Volumes[index]
		}
	}
	return nil
}

// volumeFiles returns the files of a volume by their path inside it.
func volumeFiles(cluster *Cluster, volume *corev1.Volume, secretFiles map[string]string) (map[string][]byte, error) {
	files := map[string][]byte{}
	var err error
	switch {
	case volume.ConfigMap != nil:
		err = addConfigMapFiles(cluster, volume.ConfigMap.Name, volume.ConfigMap.Items, files)
	case volume.Secret != nil:
		err = addSecretFiles(volume.Secret.SecretName, volume.Secret.Items, secretFiles, files)
	case volume.Projected != nil:
		for _, source := range volume.Projected.Sources {
			switch {
			case source.ConfigMap != nil:
				err = errors.Join(err, addConfigMapFiles(cluster, source.ConfigMap.Name, source.ConfigMap.Items, files))
			case source.Secret != nil:
				err = errors.Join(err, addSecretFiles(source.Secret.Name, source.Secret.Items, secretFiles, files))
			}
		}
	}
	// Other volume types (emptyDir, persistentVolumeClaim) start empty.
	return files, err
}

func addConfigMapFiles(cluster *Cluster, name string, items []corev1.KeyToPath, files map[string][]byte) error {
	configMap, found := cluster.ConfigMaps[name]
	if !found {
		return fmt.Errorf("ConfigMap %q is neither rendered nor supplied with -existing", name)
	}
	data := map[string][]byte{}
	for key, value := range configMap.Data {
		data[key] = []byte(value)
	}
	for key, value := range configMap.BinaryData {
		data[key] = value
	}
	return addItems(data, items, "ConfigMap "+name, files)
}

func addSecretFiles(name string, items []corev1.KeyToPath, secretFiles map[string]string, files map[string][]byte) error {
	data := map[string][]byte{}
	for key, file := range secretFiles {
		content, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		data[key] = content
	}
	return addItems(data, items, "Secret "+name+" (from -secret-file)", files)
}

// addItems writes every key, or only the listed items at their paths, as the kubelet does.
func addItems(data map[string][]byte, items []corev1.KeyToPath, owner string, files map[string][]byte) error {
	if len(items) == 0 {
		for key, value := range data {
			files[key] = value
		}
		return nil
	}
	for _, item := range items {
		value, found := data[item.Key]
		if !found {
			return fmt.Errorf("%s has no key %q", owner, item.Key)
		}
		files[item.Path] = value
	}
	return nil
}

// rewriteArgument rewrites an absolute path inside a mount, alone or as --flag=PATH.
func rewriteArgument(argument, root string, mounts []string) string {
	if name, value, found := strings.Cut(argument, "="); found && strings.HasPrefix(name, "--") {
		return name + "=" + rewritePath(value, root, mounts)
	}
	return rewritePath(argument, root, mounts)
}

func rewritePath(value, root string, mounts []string) string {
	if !strings.HasPrefix(value, "/") {
		return value
	}
	for _, mount := range mounts {
		if value == mount || strings.HasPrefix(value, strings.TrimSuffix(mount, "/")+"/") {
			return filepath.Join(root, filepath.FromSlash(value))
		}
	}
	return value
}

// quoteCommand renders a command line for the log, quoting arguments the shell would split.
func quoteCommand(words []string) string {
	quoted := make([]string, len(words))
	for index, word := range words {
		if word == "" || strings.ContainsAny(word, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			quoted[index] = "'" + strings.ReplaceAll(word, "'", `'\''`) + "'"
		} else {
			quoted[index] = word
		}
	}
	return strings.Join(quoted, " ")
}
