/*
 * larson_cxx.cc - larson.c built as C++: the same server churn, with
 * blocks from operator new and sized operator delete (see larson.c).
 */
#include "larson.c"
