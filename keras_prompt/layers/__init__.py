from keras_prompt.layers.prompt_layer import PromptLayer
