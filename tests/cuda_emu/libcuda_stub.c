/* Stands in for the NVIDIA driver (libcuda.so.1) under the CUDA emulation: the backend only
 * checks that the driver library can be loaded before it asks the runtime for devices. */
int cuDriverGetVersion(int *version);
int cuDriverGetVersion(int *version) {
    *version = 12040;
    return 0;
}
