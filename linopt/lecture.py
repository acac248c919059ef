"""The numbers the CS231n optimization note reports (docs/lecture.md), in one
place, so that experiments can print their own results beside them."""

import math

SVM_SANITY_LOSS = 9.0  # C - 1 at W ~ 0 on CIFAR-10
SOFTMAX_SANITY_LOSS = math.log(10)  # 2.302585
RANDOM_SEARCH_FIRST_LOSSES = (9.401632, 8.959668, 9.044034, 9.278948, 8.857370)
RANDOM_SEARCH_TEST_ACCURACY = 0.155
RANDOM_LOCAL_SEARCH_TEST_ACCURACY = 0.214
# The assignment's mini-batch runs: "about 0.39" (SVM), "over 0.35" (softmax).
MINIBATCH_SVM_TEST_ACCURACY = 0.39
MINIBATCH_SOFTMAX_TEST_ACCURACY = 0.35
# The step-size printout (loss and preprocessing unstated in the note).
STEP_SIZE_ORIGINAL_LOSS = 2.200718
STEP_SIZES = tuple(10.0**k for k in range(-10, 0))
STEP_SIZE_LOSSES = (
    2.200652,
    2.200057,
    2.194116,
    2.135493,
    1.647802,
    2.844355,
    25.558142,
    254.086573,
    2539.370888,
    25392.214036,
)
BEST_STEP_SIZE = 1e-6
