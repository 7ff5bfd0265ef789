/*
 * A data set on a network's device (dataset.c): its buffers (backend memory), device, width
 * and largest label, as the trainer and the evaluation read them.
 */
#ifndef SDAGD_DATASET_H
#define SDAGD_DATASET_H

#include "sdagd.h"

const float *dataset_inputs(const sdagd_dataset *ds);
const int32_t *dataset_labels(const sdagd_dataset *ds);
uint64_t dataset_serial(const sdagd_dataset *ds); /* unique per data set in the process */
int dataset_device(const sdagd_dataset *ds);
int dataset_width(const sdagd_dataset *ds);
int32_t dataset_max_label(const sdagd_dataset *ds); /* largest label: checked against each network's outputs */


/* Identity of a buffer set or data set: unique in the process, so that a recorded step
 * (CUDA graph) can tell that the memory it captured was replaced. */
uint64_t next_serial(void);

#endif
