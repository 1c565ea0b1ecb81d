#include "ca/inspect.h"
