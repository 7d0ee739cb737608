"""Tests for pneumo_helpers.recipe: the frozen description of one training."""

import dataclasses

import pytest

from pneumo_helpers.recipe import THRESHOLD_RULE, Recipe, model_words, rule_words


def test_a_recipe_is_frozen_and_replace_leaves_the_original():
    recipe = Recipe()
    quick = recipe.replace(epochs=2, image_size=64)
    assert (quick.epochs, quick.image_size) == (2, 64)
    assert (recipe.epochs, recipe.image_size) == (Recipe().epochs, Recipe().image_size)
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.epochs = 3


def test_replace_refuses_an_unknown_field():
    with pytest.raises(TypeError):
        Recipe().replace(learning_rate=0.1)


def test_the_default_rule_is_the_project_rule():
    assert Recipe().threshold_rule == THRESHOLD_RULE


def test_name_is_architecture_and_balance():
    assert Recipe(architecture="baseline", balance="none").name == "baseline-none"


@pytest.mark.parametrize("field", ["image_size", "batch_size", "epochs"])
def test_sizes_must_be_positive(field):
    with pytest.raises(ValueError, match=field):
        Recipe(**{field: 0})


@pytest.mark.parametrize("changes", [dict(consistency=-0.1), dict(pretrain_epochs=-1)])
def test_weights_and_pretraining_must_not_be_negative(changes):
    with pytest.raises(ValueError, match="negative"):
        Recipe(**changes)


def test_a_model_folder_config_reads_back_as_its_recipe():
    recipe = Recipe(architecture="baseline", epochs=3, seed=7, consistency=0.0)
    config = {**recipe.to_dict(), "parameters": 1234, "versions": {"keras": "3"}}
    config["model"] = config.pop("architecture")
    assert Recipe.from_config(config) == recipe


def test_from_config_takes_defaults_for_what_a_folder_does_not_record():
    assert Recipe.from_config({"model": "five_block", "epochs": 2}) == Recipe(epochs=2)


def test_from_config_reads_the_recipe_record_first():
    recipe = Recipe(augment="mild", balance="none", seed=7)
    config = {"model": "five_block", "augment": {"rotation": 0.1}, "balance": "none",
              "recipe": recipe.to_dict()}
    assert Recipe.from_config(config) == recipe


def test_from_config_ignores_augmentation_settings_stored_as_a_dict():
    config = {"model": "five_block", "augment": {"rotation": 0.1}}
    assert Recipe.from_config(config).augment == Recipe().augment


def test_model_words_reads_folder_names_in_plain_words():
    assert model_words("five_block-oversample-final") == \
        "five-block CNN, oversampling, retrained in full"
    assert model_words("baseline-class_weight") == "baseline CNN, class weights"
    assert model_words("DenseNet121-none") == "DenseNet121, no rebalancing"
    assert model_words("shipped") == "shipped"
    assert model_words("a-b-c") == "a-b-c"


def test_rule_words_say_each_threshold_rule_plainly():
    assert rule_words(THRESHOLD_RULE) == \
        "the highest threshold that keeps sensitivity at 0.95 or more"
    assert "largest sensitivity + specificity" in rule_words("Youden")
    assert rule_words("0.5") == "a fixed threshold of 0.5"
