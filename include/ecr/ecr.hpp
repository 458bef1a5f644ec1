// The umbrella header: includes the public API and nothing else.
#pragma once

#include "ecr/core/error.hpp"
#include "ecr/core/tensor.hpp"
#include "ecr/core/utf8.hpp"
#include "ecr/io/bundle.hpp"
